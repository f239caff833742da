package sovereign.rules.mau_licence_test

import data.sovereign.rules.mau_licence
import data.sovereign.test.fixtures

_users(count, grant) := fixtures.operator(fixtures.eu_text_only, {"monthly_active_users": count, "llama_licence_grant": grant})

test_success_at_or_under_threshold if {
	every users in [0, 1000, 700000000] {
		count(mau_licence.violations) == 0 with input as _users(users, false)
	}
}

test_success_over_threshold_with_grant if {
	count(mau_licence.violations) == 0 with input as _users(700000001, true)
}

test_success_no_user_count if {
	count(mau_licence.violations) == 0 with input as fixtures.eu_text_only
}

test_fail_over_threshold_without_grant if {
	violations := mau_licence.violations with input as _users(800000000, false)
	violations == {{
		"code": "MAU_LICENCE_REQUIRED",
		"message": concat("", [
			"operator <Exemple SAS> (kind company, country FR) reports 800000000 monthly active users, ",
			"over the 700000000 of licence family <llama3.1>, and has no llama_licence_grant from Meta",
		]),
		"citation": data.licences["llama3.1"].mau_clause.citation,
	}}
}

test_fail_over_threshold_with_grant_missing if {
	request := fixtures.operator(fixtures.eu_text_only, {"monthly_active_users": 700000001})
	count(mau_licence.violations) == 1 with input as request
}
