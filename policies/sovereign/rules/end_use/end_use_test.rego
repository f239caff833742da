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
		data.licences["llama3.1"].military_prohibition.citation,
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
	violations == {{
		"code": "END_USE_NOT_PERMITTED",
		"message": concat("", [
			"end use <defense> is prohibited by the Llama acceptable use policy outside Meta's national-security ",
			"carve-out, which on <2025-06-01> covers only: government_agency in AU, CA, GB, NZ, US; ",
			"government_contractor in AU, CA, GB, NZ, US sponsored by AU, CA, GB, NZ, US (memberships us since ",
			"2024-11-04 (primary), five-eyes-partners since 2024-11-04 (reported)); ",
			"operator <Defense Digital Service> (kind company, country US) is not covered",
		]),
		"citation": data.licences["llama3.2"].military_prohibition.citation,
	}}
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

# The carve-out is dated: a decision as_of a day uses the memberships in force that day.
_as_of(request, day) := fixtures.patched(request, {"as_of": day})

test_fail_defense_before_the_carve_out if {
	violations := end_use.violations with input as _as_of(fixtures.us_defense, "2024-11-03")
	{v.message | some v in violations} == {concat("", [
		"end use <defense> is prohibited by the Llama acceptable use policy outside Meta's national-security ",
		"carve-out, which on <2024-11-03> covers nobody (its first membership dates from 2024-11-04); ",
		"operator <Defense Digital Service> (kind government_agency, country US) is not covered",
	])}
}

test_success_defense_from_the_day_of_the_carve_out if {
	count(end_use.violations) == 0 with input as _as_of(fixtures.us_defense, "2024-11-04")
	count(end_use.violations) == 0 with input as _as_of(fixtures.five_eyes, "2024-11-04")
}

test_fail_defense_without_a_valid_as_of if {
	count(end_use.violations) == 1 with input as _as_of(fixtures.us_defense, "tomorrow")
}

# A German contractor sponsored by the US (us-defense takes any contractor the US sponsors): covered only
# from the 2025 widening.
_german_contractor(day) := _as_of(
	fixtures.operator(fixtures.us_defense, {"kind": "government_contractor", "country": "DE", "sponsor_country": "US"}),
	day,
)

test_fail_german_contractor_before_the_2025_widening if {
	violations := end_use.violations with input as _german_contractor("2025-09-21")
	count(violations) == 1
}

test_success_german_contractor_after_the_2025_widening if {
	count(end_use.violations) == 0 with input as _german_contractor("2025-09-22")
}

test_fail_after_the_2025_widening_the_message_names_every_membership if {
	request := fixtures.operator(_as_of(fixtures.us_defense, "2026-01-01"), {"kind": "company"})
	{v.message | some v in end_use.violations with input as request} == {concat("", [
		"end use <defense> is prohibited by the Llama acceptable use policy outside Meta's national-security ",
		"carve-out, which on <2026-01-01> covers only: government_agency in AU, CA, DE, FR, GB, IT, JP, KR, NZ, US; ",
		"government_contractor in AU, CA, DE, FR, GB, IT, JP, KR, NZ, US sponsored by AU, CA, DE, FR, GB, IT, JP, ",
		"KR, NZ, US (memberships us since 2024-11-04 (primary), five-eyes-partners since 2024-11-04 (reported), ",
		"allies-2025 since 2025-09-22 (unconfirmed)); operator <Defense Digital Service> (kind company, country US) ",
		"is not covered",
	])}
}

test_fail_unknown_model_cites_the_carve_out_statement if {
	request := fixtures.operator(fixtures.patched(fixtures.us_defense, {"model": "llama-9"}), {"kind": "company"})
	{v.citation | some v in end_use.violations with input as request} == {data.national_security_carve_out.citation}
}
