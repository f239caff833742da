package sovereign.rules.end_use_test

import data.sovereign.rules.end_use
import data.sovereign.test.fixtures

_end_use(request, use) := fixtures.patched(request, {"end_use": use})

test_success_defense_by_us_agency if {
	count(end_use.violations) == 0 with input as fixtures.us_defense
}

test_success_intelligence_by_five_eyes_contractor if {
	count(end_use.violations) == 0 with input as fixtures.five_eyes
}

test_success_every_use_in_us_defense if {
	every use in ["commercial", "research", "public_sector", "defense", "national_security", "intelligence"] {
		count(end_use.violations) == 0 with input as _end_use(fixtures.us_defense, use)
	}
}

test_success_civil_uses_in_eu_text_only if {
	every use in ["commercial", "research", "public_sector"] {
		count(end_use.violations) == 0 with input as _end_use(fixtures.eu_text_only, use)
	}
}

test_fail_defense_in_eu_text_only_by_eu_company if {
	violations := end_use.violations with input as _end_use(fixtures.eu_text_only, "defense")
	{v.citation | some v in violations} == {
		data.regions["eu-text-only"].end_uses.citation,
		data.national_security_carve_out.citation,
	}
}

test_fail_national_security_in_eu_text_only_by_us_agency if {
	request := fixtures.operator(_end_use(fixtures.eu_text_only, "national_security"), {"kind": "government_agency", "country": "US"})
	violations := end_use.violations with input as request
	{v.citation | some v in violations} == {data.regions["eu-text-only"].end_uses.citation}
}

test_fail_defense_by_company_outside_carve_out if {
	request := fixtures.operator(fixtures.us_defense, {"kind": "company"})
	violations := end_use.violations with input as request
	{v.message | some v in violations} == {concat("", [
		"end use <defense> is prohibited by the Llama acceptable use policy outside Meta's November 2024 ",
		"national-security carve-out, which covers only: government_agency in AU, CA, GB, NZ, US; ",
		"government_contractor in AU, CA, GB, NZ, US sponsored by AU, CA, GB, NZ, US; ",
		"operator <Defense Digital Service> (kind company, country US) is not covered",
	])}
}

test_fail_intelligence_by_contractor_sponsored_outside_five_eyes if {
	request := fixtures.operator(fixtures.five_eyes, {"sponsor_country": "DE"})
	count(end_use.violations) == 1 with input as request
}

test_fail_intelligence_by_contractor_based_outside_five_eyes if {
	request := fixtures.operator(fixtures.five_eyes, {"country": "FR"})
	count(end_use.violations) == 1 with input as request
}

test_fail_unknown_end_use if {
	violations := end_use.violations with input as _end_use(fixtures.eu_text_only, "gardening")
	{v.message | some v in violations} == {"end use <gardening> is not permitted in region <eu-text-only>; permitted: commercial, research, public_sector"}
}

test_fail_missing_end_use if {
	count(end_use.violations) == 1 with input as object.remove(fixtures.eu_text_only, ["end_use"])
}
