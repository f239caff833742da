package sovereign.rules.built_with_llama_test

import data.sovereign.rules.built_with_llama
import data.sovereign.test.fixtures

test_success_reported_for_every_catalogued_model if {
	every id, model in data.catalogue.models {
		request := fixtures.patched(fixtures.eu_text_only, {"model": id})
		obligations := built_with_llama.obligations with input as request
		count(obligations) == 1
		some obligation in obligations
		obligation.citation == data.licences[model.licence].attribution.citation
	}
}

test_success_each_family_its_own_attribution if {
	llama31 := built_with_llama.obligations with input as fixtures.eu_text_only
	{o.message | some o in llama31} == {concat("", [
		"display \"Built with Llama\" prominently and ship the Llama 3.1 Community License with any product or ",
		"service that serves model <llama-3.1-8b-instruct>",
	])}
	llama3 := built_with_llama.obligations with input as fixtures.patched(fixtures.eu_text_only, {"model": "meta-llama-3-8b"})
	{o.message | some o in llama3} == {concat("", [
		"display \"Built with Meta Llama 3\" prominently and ship the Meta Llama 3 Community License with any ",
		"product or service that serves model <meta-llama-3-8b>",
	])}
}

test_success_llama_2_ships_the_licence_and_notice_only if {
	llama2 := built_with_llama.obligations with input as fixtures.patched(fixtures.eu_text_only, {"model": "llama-2-13b-chat"})
	{o.message | some o in llama2} == {concat("", [
		"ship the Llama 2 Community License with any product or service that serves model <llama-2-13b-chat>, ",
		"with its Notice file (\"Llama 2 is licensed under the LLAMA 2 Community License, Copyright (c) Meta ",
		"Platforms, Inc. All Rights Reserved.\"); the licence asks for no \"Built with\" display",
	])}
}

test_success_not_reported_for_unknown_model if {
	request := fixtures.patched(fixtures.eu_text_only, {"model": "gpt-5"})
	count(built_with_llama.obligations) == 0 with input as request
}
