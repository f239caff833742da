package sovereign.rules.mau_licence_test

import data.sovereign.rules.mau_licence
import data.sovereign.test.fixtures

# The eu_text_only fixture serves Llama 3.1 8B: licence family llama3.1, released 2024-07-23, so June 2024.
_users(count, grant) := fixtures.operator(fixtures.eu_text_only, {"monthly_active_users": count, "llama_licence_grant": grant})

_by_month(months) := fixtures.operator(fixtures.eu_text_only, {"mau_by_month": months})

_operator := "operator <Exemple SAS> (kind company, country FR)"

_release := "the calendar month before licence family <llama3.1>'s release on 2024-07-23"

test_success_deciding_months_from_release_dates if {
	{family: licence.mau_clause.deciding_month | some family, licence in data.licences} == {
		"llama2": "2023-06", "llama3": "2024-03", "llama3.1": "2024-06",
		"llama3.2": "2024-08", "llama3.3": "2024-11", "llama4": "2025-03",
	}
}

test_success_at_or_under_threshold if {
	every users in [0, 1000, 700000000] {
		count(mau_licence.violations) == 0 with input as _users(users, false)
		count(mau_licence.violations) == 0 with input as _by_month({"2024-06": users})
	}
}

test_success_over_threshold_with_grant if {
	count(mau_licence.violations) == 0 with input as _users(700000001, true)
}

test_success_no_user_count if {
	count(mau_licence.violations) == 0 with input as fixtures.eu_text_only
}

test_fail_deciding_month_over_threshold if {
	violations := mau_licence.violations with input as _by_month({"2024-06": 700000001, "2024-07": 5})
	violations == {{
		"code": "MAU_LICENCE_REQUIRED",
		"message": concat("", [
			_operator, " reports 700000001 monthly active users (licensee and affiliates) for 2024-06, ", _release,
			": over the 700000000 of its §2, and it has no llama_licence_grant from Meta",
		]),
		"citation": data.licences["llama3.1"].mau_clause.citation,
	}}
}

# Only the month before the release counts: today's figure does not, when that month's is given.
test_success_deciding_month_under_threshold_whatever_other_months_say if {
	request := fixtures.operator(fixtures.eu_text_only, {
		"mau_by_month": {"2024-06": 650000000, "2024-07": 900000000, "2026-05": 2000000000},
		"monthly_active_users": 2000000000,
	})
	count(mau_licence.violations) == 0 with input as request
}

# Each family has its own month: 800M in March 2025 is Llama 4's month and no other's.
test_fail_only_the_family_whose_month_it_is if {
	scout := fixtures.patched(_by_month({"2025-03": 800000000}), {"model": "llama-4-scout-17b-16e-instruct"})
	count(mau_licence.violations) == 1 with input as scout
	count(mau_licence.violations) == 0 with input as _by_month({"2025-03": 800000000})
}

test_fail_llama_2_month_before_its_release if {
	request := fixtures.patched(_by_month({"2023-06": 750000000}), {"model": "meta-llama/Llama-2-7b-chat-hf"})
	violations := mau_licence.violations with input as request
	{v.citation | some v in violations} == {data.licences.llama2.mau_clause.citation}
}

test_fail_missing_month_falls_back_to_monthly_active_users if {
	request := fixtures.operator(fixtures.eu_text_only, {"mau_by_month": {"2024-07": 1}, "monthly_active_users": 800000000})
	violations := mau_licence.violations with input as request
	violations == {{
		"code": "MAU_LICENCE_REQUIRED",
		"message": concat("", [
			_operator, " gives no mau_by_month figure for 2024-06, ", _release, ", whose figure decides §2; its ",
			"monthly_active_users (800000000) stands in for it (conservative) and is over the 700000000, and it ",
			"has no llama_licence_grant from Meta",
		]),
		"citation": data.licences["llama3.1"].mau_clause.citation,
	}}
}

test_fail_over_threshold_with_grant_missing if {
	request := fixtures.operator(fixtures.eu_text_only, {"monthly_active_users": 700000001})
	count(mau_licence.violations) == 1 with input as request
}

test_fail_deciding_month_with_grant_false if {
	request := fixtures.operator(_by_month({"2024-06": 700000001}), {"llama_licence_grant": false})
	count(mau_licence.violations) == 1 with input as request
}
