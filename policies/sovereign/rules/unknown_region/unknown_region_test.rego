package sovereign.rules.unknown_region_test

import data.sovereign.rules.unknown_region
import data.sovereign.test.fixtures

test_success_shipped_regions if {
	every request in [fixtures.us_defense, fixtures.five_eyes, fixtures.eu_text_only] {
		count(unknown_region.violations) == 0 with input as request
	}
}

test_fail_unknown_region if {
	request := fixtures.patched(fixtures.eu_text_only, {"cluster": {"region": "eu-multimodal"}})
	violations := unknown_region.violations with input as request
	count(violations) == 1
	some violation in violations
	violation.code == "UNKNOWN_REGION"
	violation.message == concat("", [
		"cluster region <eu-multimodal> is not a region profile; known regions: ",
		"eu-text-only, five-eyes, us-defense",
	])
}

test_fail_region_lookup_is_case_sensitive if {
	request := fixtures.patched(fixtures.eu_text_only, {"cluster": {"region": "EU-TEXT-ONLY"}})
	count(unknown_region.violations) == 1 with input as request
}

test_fail_missing_region if {
	request := json.remove(fixtures.eu_text_only, ["cluster/region"])
	count(unknown_region.violations) == 1 with input as request
}

test_fail_no_region_profiles_loaded if {
	violations := unknown_region.violations with input as fixtures.eu_text_only with data.regions as {}
	some violation in violations
	endswith(violation.message, "known regions: none")
}
