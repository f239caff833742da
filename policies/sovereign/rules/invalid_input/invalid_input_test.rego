package sovereign.rules.invalid_input_test

import data.sovereign.rules.invalid_input
import data.sovereign.test.fixtures

test_success_complete_requests if {
	every request in [fixtures.us_defense, fixtures.five_eyes, fixtures.eu_text_only] {
		count(invalid_input.violations) == 0 with input as request
	}
}

test_success_screening_absent_or_null if {
	count(invalid_input.violations) == 0 with input as object.remove(fixtures.us_defense, ["screening"])
	count(invalid_input.violations) == 0 with input as fixtures.patched(fixtures.us_defense, {"screening": null})
}

test_fail_missing_as_of if {
	violations := invalid_input.violations with input as object.remove(fixtures.eu_text_only, ["as_of"])
	{v.message | some v in violations} == {"input field as_of is missing or not a YYYY-MM-DD date (got null): no accreditation can be valid"}
}

test_fail_as_of_not_iso_date if {
	request := fixtures.patched(fixtures.eu_text_only, {"as_of": "01/06/2025"})
	count(invalid_input.violations) == 1 with input as request
}

test_fail_operator_kind_not_a_string if {
	request := fixtures.operator(fixtures.eu_text_only, {"kind": ["company"]})
	violations := invalid_input.violations with input as request
	{v.message | some v in violations} == {"input field cluster.operator.kind is missing or not a string"}
}

test_fail_screening_hits_unreadable if {
	request := fixtures.patched(fixtures.us_defense, {"screening": {"hits": "none"}})
	violations := invalid_input.violations with input as request
	{v.message | some v in violations} == {"input field screening.hits must be a list of hits (got {\"hits\":\"none\"})"}
}

test_fail_every_field_of_a_garbage_input if {
	every garbage in ["garbage", 42, [], null, {}, {"cluster": "c"}] {
		count(invalid_input.violations) == 9 with input as garbage
	}
}
