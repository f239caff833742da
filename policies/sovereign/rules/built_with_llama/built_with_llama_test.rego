package sovereign.rules.built_with_llama_test

import data.sovereign.rules.built_with_llama
import data.sovereign.test.fixtures

test_success_reported_for_every_catalogued_model if {
	every id, model in data.catalogue.models {
		request := fixtures.patched(fixtures.eu_text_only, {"model": id})
		obligations := built_with_llama.obligations with input as request
		some obligation in obligations
		obligation.citation == data.licences[model.licence].attribution.citation
		startswith(obligation.message, "display \"Built with Llama\" prominently")
	}
}

test_success_not_reported_for_unknown_model if {
	request := fixtures.patched(fixtures.eu_text_only, {"model": "gpt-5"})
	count(built_with_llama.obligations) == 0 with input as request
}
