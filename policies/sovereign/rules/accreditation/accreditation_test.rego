package sovereign.rules.accreditation_test

import data.sovereign.rules.accreditation
import data.sovereign.test.fixtures

_holding(request, accreditations) := fixtures.patched(request, {"cluster": {"accreditations": accreditations}})

test_success_valid_accreditation if {
	count(accreditation.violations) == 0 with input as fixtures.us_defense
	count(accreditation.violations) == 0 with input as fixtures.five_eyes
}

test_success_valid_on_its_expiry_date if {
	request := _holding(fixtures.us_defense, [{"scheme": "dod-il6", "expires": "2025-06-01"}])
	count(accreditation.violations) == 0 with input as request
}

test_success_one_valid_among_expired if {
	request := _holding(fixtures.us_defense, [
		{"scheme": "dod-il5", "expires": "2024-01-01"},
		{"scheme": "dod-il6", "expires": "2030-01-01"},
	])
	count(accreditation.violations) == 0 with input as request
}

test_success_region_without_requirement if {
	count(accreditation.violations) == 0 with input as fixtures.eu_text_only
}

test_success_each_five_eyes_country_with_its_scheme if {
	every country, scheme in {"US": "fedramp-high", "GB": "uk-secret", "CA": "ca-protected-b", "AU": "au-irap-protected", "NZ": "nz-restricted"} {
		request := _holding(
			fixtures.patched(fixtures.five_eyes, {"cluster": {"country": country}}),
			[{"scheme": scheme, "expires": "2027-01-01"}],
		)
		count(accreditation.violations) == 0 with input as request
	}
}

test_fail_missing if {
	violations := accreditation.violations with input as _holding(fixtures.us_defense, [])
	violations == {{
		"code": "ACCREDITATION_MISSING",
		"message": "cluster <pentagon-1> in <US> holds none of the accreditations region <us-defense> accepts there: dod-il5, dod-il6",
		"citation": data.regions["us-defense"].accreditations.citation,
	}}
}

test_fail_missing_when_scheme_not_accepted_by_region if {
	request := _holding(fixtures.us_defense, [{"scheme": "fedramp-high", "expires": "2030-01-01"}])
	fixtures.codes(accreditation.violations) == {"ACCREDITATION_MISSING"} with input as request
}

test_fail_missing_when_scheme_is_another_countrys if {
	request := _holding(fixtures.five_eyes, [{"scheme": "dod-il5", "expires": "2030-01-01"}])
	fixtures.codes(accreditation.violations) == {"ACCREDITATION_MISSING"} with input as request
}

test_fail_missing_when_cluster_outside_the_region if {
	request := fixtures.patched(fixtures.us_defense, {"cluster": {"country": "DE"}})
	violations := accreditation.violations with input as request
	some violation in violations
	endswith(violation.message, "accepts there: none (no scheme is accepted for that country)")
}

test_fail_expired if {
	request := _holding(fixtures.us_defense, [{"scheme": "dod-il5", "expires": "2025-05-31"}])
	violations := accreditation.violations with input as request
	violations == {{
		"code": "ACCREDITATION_EXPIRED",
		"message": "cluster <pentagon-1> holds no accreditation of dod-il5, dod-il6 valid on <2025-06-01>; held: dod-il5 expires 2025-05-31",
		"citation": data.regions["us-defense"].accreditations.citation,
	}}
}

test_fail_expired_when_as_of_missing if {
	request := object.remove(fixtures.us_defense, ["as_of"])
	fixtures.codes(accreditation.violations) == {"ACCREDITATION_EXPIRED"} with input as request
}

test_fail_expired_when_expiry_unreadable if {
	every expires in ["never", "2030-1-1", 20300101, null] {
		request := _holding(fixtures.us_defense, [{"scheme": "dod-il5", "expires": expires}])
		fixtures.codes(accreditation.violations) == {"ACCREDITATION_EXPIRED"} with input as request
	}
}
