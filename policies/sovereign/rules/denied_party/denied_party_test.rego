package sovereign.rules.denied_party_test

import data.sovereign.rules.denied_party
import data.sovereign.test.fixtures

_screened(hits) := fixtures.patched(fixtures.us_defense, {"screening": {"hits": hits}})

test_success_no_hits if {
	count(denied_party.violations) == 0 with input as fixtures.us_defense
	count(denied_party.violations) == 0 with input as object.remove(fixtures.us_defense, ["screening"])
}

test_fail_entity_list_hit if {
	violations := denied_party.violations with input as _screened([{"name": "DEFENSE DIGITAL SVC", "source": "EL", "score": 91.5}])
	violations == {{
		"code": "DENIED_PARTY",
		"message": "operator <Defense Digital Service> matched <DEFENSE DIGITAL SVC> on screening list <EL> (score 91.5)",
		"citation": data.screening.sources.EL.citation,
	}}
}

test_fail_every_hit_is_reported if {
	hits := [{"name": "A", "source": "SDN", "score": 90}, {"name": "B", "source": "DPL", "score": 88}]
	violations := denied_party.violations with input as _screened(hits)
	{v.citation | some v in violations} == {data.screening.sources.SDN.citation, data.screening.sources.DPL.citation}
}

test_fail_hit_from_unlisted_source if {
	violations := denied_party.violations with input as _screened([{"name": "A", "source": "XYZ", "score": 99}])
	some violation in violations
	violation.citation == data.codes.DENIED_PARTY.citation
}

test_fail_malformed_hit_still_denies if {
	violations := denied_party.violations with input as _screened(["Defense Digital Service"])
	some violation in violations
	violation.message == "operator <Defense Digital Service> matched <null> on screening list <null> (score null)"
}
