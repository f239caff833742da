package sovereign.rules.embargo_test

import data.sovereign.rules.embargo
import data.sovereign.test.fixtures

test_success_no_embargoed_country if {
	every request in [fixtures.us_defense, fixtures.five_eyes, fixtures.eu_text_only] {
		count(embargo.violations) == 0 with input as request
	}
}

test_fail_cluster_in_embargoed_country if {
	request := fixtures.patched(fixtures.eu_text_only, {"cluster": {"country": "IR"}})
	violations := embargo.violations with input as request

	# The weights default to the cluster's country, so both are reported.
	{v.message | some v in violations} == {
		"cluster country <IR> is an embargoed destination",
		"weights country <IR> is an embargoed destination",
	}
	every violation in violations {
		violation.citation == data.countries.embargoed.citations[0]
	}
}

test_fail_weights_in_embargoed_country if {
	request := fixtures.patched(fixtures.us_defense, {"cluster": {"weights_country": "KP"}})
	violations := embargo.violations with input as request
	{v.message | some v in violations} == {"weights country <KP> is an embargoed destination"}
}

test_fail_operator_in_embargoed_country if {
	every country in ["CU", "SY", "RU", "BY"] {
		request := fixtures.operator(fixtures.eu_text_only, {"country": country})
		count(embargo.violations) == 1 with input as request
	}
}
