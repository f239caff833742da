package sovereign.rules.data_residency_test

import data.sovereign.rules.data_residency
import data.sovereign.test.fixtures

test_success_inside_region if {
	every request in [fixtures.us_defense, fixtures.five_eyes, fixtures.eu_text_only] {
		count(data_residency.violations) == 0 with input as request
	}
}

test_success_weights_elsewhere_inside_region if {
	request := fixtures.patched(fixtures.eu_text_only, {"cluster": {"weights_country": "DE"}})
	count(data_residency.violations) == 0 with input as request
}

test_fail_cluster_outside_region if {
	request := fixtures.patched(fixtures.eu_text_only, {"cluster": {"country": "CH"}})
	violations := data_residency.violations with input as request
	{v.message | some v in violations} == {
		concat("", [
			"cluster country <CH> is outside region <eu-text-only>; allowed: ",
			"AT, BE, BG, CY, CZ, DE, DK, EE, ES, FI, FR, GR, HR, HU, IE, IT, LT, LU, LV, MT, NL, PL, PT, RO, SE, SI, SK",
		]),
		concat("", [
			"weights country <CH> is outside region <eu-text-only>; allowed: ",
			"AT, BE, BG, CY, CZ, DE, DK, EE, ES, FI, FR, GR, HR, HU, IE, IT, LT, LU, LV, MT, NL, PL, PT, RO, SE, SI, SK",
		]),
	}
}

test_fail_weights_outside_region if {
	request := fixtures.patched(fixtures.us_defense, {"cluster": {"weights_country": "GB"}})
	violations := data_residency.violations with input as request
	{v.message | some v in violations} == {"weights country <GB> is outside region <us-defense>; allowed: US"}
	some violation in violations
	violation.citation == data.regions["us-defense"].placement.citation
}

test_fail_missing_cluster_country if {
	request := json.remove(fixtures.five_eyes, ["cluster/country"])
	count(data_residency.violations) == 2 with input as request
}
