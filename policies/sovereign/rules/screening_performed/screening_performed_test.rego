package sovereign.rules.screening_performed_test

import data.sovereign.rules.screening_performed
import data.sovereign.test.fixtures

_unscreened := fixtures.patched(fixtures.five_eyes, {"screening": {"performed": false, "hits": []}})

_screened := fixtures.patched(fixtures.five_eyes, {"screening": {"performed": true, "hits": []}})

_kyc := data.codes.SCREENING_NOT_PERFORMED.citation

test_fail_approval_without_screening if {
	request := fixtures.patched(_unscreened, {"approval": true})
	screening_performed.violations == {{
		"code": "SCREENING_NOT_PERFORMED",
		"message": concat("", [
			"operator <Albion Analytics Ltd> was not screened against any denied-party list: an organisation ",
			"that cannot be screened cannot be approved",
		]),
		"citation": _kyc,
	}} with input as request
	screening_performed.obligations == set() with input as request
}

test_success_decision_without_screening_carries_the_notice if {
	every request in [_unscreened, fixtures.patched(_unscreened, {"approval": false})] {
		screening_performed.violations == set() with input as request
		screening_performed.obligations == {{
			"code": "SCREENING_NOT_PERFORMED_NOTICE",
			"message": concat("", [
				"operator <Albion Analytics Ltd> was not screened against any denied-party list: this decision ",
				"does not cover denied-party screening; screen the operator before relying on it",
			]),
			"citation": data.codes.SCREENING_NOT_PERFORMED_NOTICE.citation,
		}} with input as request
	}
}

test_success_screened_approval if {
	request := fixtures.patched(_screened, {"approval": true})
	screening_performed.violations == set() with input as request
	screening_performed.obligations == set() with input as request
}

test_success_older_callers_without_performed if {
	every request in [
		fixtures.us_defense,
		fixtures.five_eyes,
		fixtures.patched(fixtures.us_defense, {"approval": true}),
		fixtures.patched(fixtures.us_defense, {"screening": null, "approval": true}),
	] {
		screening_performed.violations == set() with input as request
		screening_performed.obligations == set() with input as request
	}
}

test_success_unreadable_performed_is_left_to_invalid_input if {
	request := fixtures.patched(_unscreened, {"screening": {"performed": "no"}, "approval": true})
	screening_performed.violations == set() with input as request
	screening_performed.obligations == set() with input as request
}

test_fail_unscreened_without_policy_data_still_denies if {
	request := fixtures.patched(_unscreened, {"approval": true})
	violations := screening_performed.violations with input as request with data.codes as {}
	{v.code | some v in violations} == {"SCREENING_NOT_PERFORMED"}
}

_unavailable := fixtures.patched(_unscreened, {"screening": {
	"performed": false,
	"hits": [],
	"required": true,
	"problem": "the list is 9 days old",
}})

test_fail_required_screening_without_a_list_is_unavailable_for_every_decision if {
	every request in [_unavailable, fixtures.patched(_unavailable, {"approval": true})] {
		screening_performed.violations == {{
			"code": "SCREENING_UNAVAILABLE",
			"message": concat("", [
				"operator <Albion Analytics Ltd> cannot be screened: no current denied-party list (the list is ",
				"9 days old); screening is required here, so nothing is decided until a current list is configured",
			]),
			"citation": data.codes.SCREENING_UNAVAILABLE.citation,
		}} with input as request
		screening_performed.obligations == set() with input as request
	}
}

test_success_required_screening_performed if {
	request := fixtures.patched(_screened, {"screening": {"performed": true, "hits": [], "required": true}})
	screening_performed.violations == set() with input as request
	screening_performed.obligations == set() with input as request
}

test_success_unreadable_required_is_left_to_invalid_input if {
	request := fixtures.patched(_unscreened, {"screening": {"performed": false, "hits": [], "required": "yes"}})
	{v.code | some v in screening_performed.violations} == set() with input as request
}
