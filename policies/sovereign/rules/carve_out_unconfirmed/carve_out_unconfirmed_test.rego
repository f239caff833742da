package sovereign.rules.carve_out_unconfirmed_test

import data.sovereign.rules.carve_out_unconfirmed
import data.sovereign.test.fixtures

_contractor(country, day) := fixtures.patched(
	fixtures.operator(fixtures.us_defense, {"kind": "government_contractor", "country": country, "sponsor_country": "US"}),
	{"as_of": day},
)

test_fail_covered_only_by_an_unconfirmed_membership if {
	obligations := carve_out_unconfirmed.obligations with input as _contractor("FR", "2026-01-01")
	obligations == {{
		"code": "NATIONAL_SECURITY_CARVE_OUT_UNCONFIRMED",
		"message": concat("", [
			"end use <defense> by operator <Defense Digital Service> (kind government_contractor, country FR, ",
			"sponsor US) is covered by Meta's national-security carve-out only through membership <allies-2025> ",
			"(since 2025-09-22), whose confidence is unconfirmed: Meta's own statement of it was not read; confirm ",
			"it with Meta before relying on this decision",
		]),
		"citation": data.national_security_carve_out.members[2].source,
	}}
}

test_success_not_reported_when_a_confirmed_membership_covers if {
	count(carve_out_unconfirmed.obligations) == 0 with input as _contractor("US", "2026-01-01")
	count(carve_out_unconfirmed.obligations) == 0 with input as fixtures.patched(fixtures.five_eyes, {"as_of": "2026-01-01"})
}

test_success_not_reported_before_the_unconfirmed_membership if {
	count(carve_out_unconfirmed.obligations) == 0 with input as _contractor("FR", "2025-09-21")
}

test_success_not_reported_when_nothing_covers if {
	count(carve_out_unconfirmed.obligations) == 0 with input as _contractor("BR", "2026-01-01")
}

test_success_not_reported_for_civil_end_uses if {
	request := fixtures.patched(_contractor("FR", "2026-01-01"), {"end_use": "research"})
	count(carve_out_unconfirmed.obligations) == 0 with input as request
}
