package sovereign.rules.unknown_model_test

import data.sovereign.rules.unknown_model
import data.sovereign.test.fixtures

test_success_catalogue_id if {
	count(unknown_model.violations) == 0 with input as fixtures.eu_text_only
}

test_success_hf_repo_id_in_any_case if {
	request := fixtures.patched(fixtures.eu_text_only, {"model": "META-LLAMA/Llama-3.1-8B-Instruct"})
	count(unknown_model.violations) == 0 with input as request
}

test_success_older_hf_repo_name if {
	request := fixtures.patched(fixtures.eu_text_only, {"model": "meta-llama/Meta-Llama-3.1-8B-Instruct"})
	count(unknown_model.violations) == 0 with input as request
}

test_fail_unknown_model if {
	request := fixtures.patched(fixtures.eu_text_only, {"model": "llama-9-1t"})
	violations := unknown_model.violations with input as request
	count(violations) == 1
	some violation in violations
	violation.code == "UNKNOWN_MODEL"
	contains(violation.message, "<llama-9-1t>")
	violation.citation == data.codes.UNKNOWN_MODEL.citation
}

test_fail_hf_repo_of_another_publisher if {
	request := fixtures.patched(fixtures.eu_text_only, {"model": "someone/Llama-3.1-8B-Instruct"})
	count(unknown_model.violations) == 1 with input as request
}

test_fail_missing_model if {
	violations := unknown_model.violations with input as object.remove(fixtures.eu_text_only, ["model"])
	count(violations) == 1
	some violation in violations
	contains(violation.message, "<null>")
}

test_fail_model_not_a_string if {
	count(unknown_model.violations) == 1 with input as fixtures.patched(fixtures.eu_text_only, {"model": 8})
}
