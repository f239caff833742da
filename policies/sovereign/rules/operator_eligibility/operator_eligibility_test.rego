package sovereign.rules.operator_eligibility_test

import data.sovereign.rules.operator_eligibility
import data.sovereign.test.fixtures

test_success_us_agency_in_us_defense if {
	count(operator_eligibility.violations) == 0 with input as fixtures.us_defense
}

test_success_contractor_sponsored_by_us_in_us_defense if {
	# As the profile is written: only the sponsor must be the US, not the contractor's own country.
	every country in ["US", "GB"] {
		request := fixtures.operator(fixtures.us_defense, {
			"kind": "government_contractor",
			"country": country,
			"sponsor_country": "US",
		})
		count(operator_eligibility.violations) == 0 with input as request
	}
}

test_fail_company_in_us_defense if {
	request := fixtures.operator(fixtures.us_defense, {"kind": "company"})
	violations := operator_eligibility.violations with input as request
	{v.message | some v in violations} == {concat("", [
		"operator <Defense Digital Service> (kind company, country US) is not eligible for region <us-defense>; ",
		"eligible: government_agency in US; government_contractor sponsored by US",
	])}
	some violation in violations
	violation.citation == data.regions["us-defense"].operators.citation
}

test_fail_contractor_sponsored_by_ally_in_us_defense if {
	request := fixtures.operator(fixtures.us_defense, {"kind": "government_contractor", "sponsor_country": "GB"})
	count(operator_eligibility.violations) == 1 with input as request
}

test_fail_foreign_agency_in_us_defense if {
	request := fixtures.operator(fixtures.us_defense, {"country": "CA"})
	count(operator_eligibility.violations) == 1 with input as request
}

test_success_five_eyes_agencies_and_contractors if {
	every country in ["US", "GB", "CA", "AU", "NZ"] {
		contractor := fixtures.operator(fixtures.five_eyes, {"country": country, "sponsor_country": "CA"})
		count(operator_eligibility.violations) == 0 with input as contractor
		agency := fixtures.operator(fixtures.five_eyes, {"kind": "government_agency", "country": country})
		count(operator_eligibility.violations) == 0 with input as agency
	}
}

test_fail_five_eyes_contractor_without_sponsor if {
	request := json.remove(fixtures.five_eyes, ["cluster/operator/sponsor_country"])
	violations := operator_eligibility.violations with input as request
	some violation in violations
	contains(violation.message, "(kind government_contractor, country GB)")
}

test_fail_five_eyes_contractor_based_outside if {
	request := fixtures.operator(fixtures.five_eyes, {"country": "DE"})
	count(operator_eligibility.violations) == 1 with input as request
}

test_fail_research_institution_in_five_eyes if {
	request := fixtures.operator(fixtures.five_eyes, {"kind": "research_institution"})
	count(operator_eligibility.violations) == 1 with input as request
}

test_success_any_kind_in_eu_text_only if {
	every kind in ["company", "government_agency", "government_contractor", "research_institution", "individual"] {
		request := fixtures.operator(fixtures.eu_text_only, {"kind": kind, "country": "JP"})
		count(operator_eligibility.violations) == 0 with input as request
	}
}

test_fail_unknown_kind_in_eu_text_only if {
	request := fixtures.operator(fixtures.eu_text_only, {"kind": "robot"})
	count(operator_eligibility.violations) == 1 with input as request
}
