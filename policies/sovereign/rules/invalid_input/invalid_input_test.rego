package sovereign.rules.invalid_input_test

import data.sovereign.lib
import data.sovereign.rules.invalid_input
import data.sovereign.test.fixtures

test_success_complete_requests if {
	every request in [fixtures.us_defense, fixtures.five_eyes, fixtures.eu_text_only] {
		count(invalid_input.violations) == 0 with input as request
	}
}

test_success_screening_absent_or_null if {
	count(invalid_input.violations) == 0 with input as object.remove(fixtures.us_defense, ["screening"])
	count(invalid_input.violations) == 0 with input as fixtures.patched(fixtures.us_defense, {"screening": null})
}

test_fail_missing_as_of if {
	violations := invalid_input.violations with input as object.remove(fixtures.eu_text_only, ["as_of"])
	{v.message | some v in violations} == {"input field as_of is missing or not a YYYY-MM-DD date (got null): no accreditation can be valid"}
}

test_fail_as_of_not_iso_date if {
	request := fixtures.patched(fixtures.eu_text_only, {"as_of": "01/06/2025"})
	count(invalid_input.violations) == 1 with input as request
}

test_fail_operator_kind_not_a_string if {
	request := fixtures.operator(fixtures.eu_text_only, {"kind": ["company"]})
	violations := invalid_input.violations with input as request
	{v.message | some v in violations} == {"input field cluster.operator.kind is missing or not a string"}
}

test_fail_screening_hits_unreadable if {
	request := fixtures.patched(fixtures.us_defense, {"screening": {"hits": "none"}})
	violations := invalid_input.violations with input as request
	{v.message | some v in violations} == {"input field screening.hits must be a list of hits (got {\"hits\":\"none\"})"}
}

test_fail_every_field_of_a_garbage_input if {
	every garbage in ["garbage", 42, [], null, {}, {"cluster": "c"}] {
		count(invalid_input.violations) == 9 with input as garbage
	}
}

_messages(request) := {v.message | some v in invalid_input.violations with input as request}

test_success_screening_performed_and_approval_readable if {
	every patch in [
		{"screening": {"performed": true, "hits": []}},
		{"screening": {"performed": false, "hits": []}, "approval": true},
		{"approval": false},
	] {
		_messages(fixtures.patched(fixtures.us_defense, patch)) == set()
	}
}

test_fail_screening_performed_not_a_boolean if {
	request := fixtures.patched(fixtures.us_defense, {"screening": {"performed": "no", "hits": []}})
	_messages(request) == {"input field screening.performed must be true or false (got no)"}
	_messages(fixtures.patched(fixtures.us_defense, {"screening": {"performed": null, "hits": []}})) == {"input field screening.performed must be true or false (got null)"}
}

test_fail_screening_required_not_a_boolean if {
	request := fixtures.patched(fixtures.us_defense, {"screening": {"performed": true, "hits": [], "required": "yes"}})
	_messages(request) == {"input field screening.required must be true or false (got yes)"}
}

test_fail_approval_not_a_boolean if {
	_messages(fixtures.patched(fixtures.us_defense, {"approval": "yes"})) == {"input field approval must be true or false (got yes)"}
	_messages(fixtures.patched(fixtures.us_defense, {"approval": 1})) == {"input field approval must be true or false (got 1)"}
}

test_success_weights_readable if {
	every weights in [
		{"input_modalities": ["image", "text"], "parameters": 10670220835},
		{"input_modalities": ["text"], "parameters": 4200000, "stand_in_for": "llama-3.2-11b-vision-instruct"},
		{"input_modalities": [], "parameters": 0, "stand_in_for": null},
	] {
		_messages(fixtures.patched(fixtures.us_defense, {"weights": weights})) == set()
	}
}

test_fail_weights_unreadable if {
	every weights in [
		null,
		"checkpoint",
		{"parameters": 8030261248},
		{"input_modalities": "text", "parameters": 8030261248},
		{"input_modalities": [1], "parameters": 8030261248},
		{"input_modalities": ["text"]},
		{"input_modalities": ["text"], "parameters": "8B"},
		{"input_modalities": ["text"], "parameters": -1},
		{"input_modalities": ["text"], "parameters": 8.5},
		{"input_modalities": ["text"], "parameters": 8030261248, "stand_in_for": 7},
	] {
		_messages(fixtures.patched(fixtures.us_defense, {"weights": weights})) == {concat("", [
			"input field weights must be {input_modalities: [string], parameters: integer >= 0, ",
			"stand_in_for: catalogue id (optional)} (got ", lib.text(weights), ")",
		])}
	}
}

test_success_request_modalities_readable if {
	_messages(fixtures.patched(fixtures.us_defense, {"request": {"modalities": ["image", "text"], "tenant": "army"}})) == set()
	_messages(fixtures.patched(fixtures.us_defense, {"request": {"tenant": "army"}})) == set()
}

test_fail_request_modalities_unreadable if {
	request := fixtures.patched(fixtures.us_defense, {"request": {"modalities": "image"}})
	_messages(request) == {"input field request.modalities must be a list of strings (got image)"}
	_messages(fixtures.patched(fixtures.us_defense, {"request": {"modalities": [["image"]]}})) == {"input field request.modalities must be a list of strings (got [[\"image\"]])"}
}

test_success_operator_licence_facts_readable if {
	every patch in [
		{"principal_place_of_business": "DE"},
		{"mau_by_month": {}},
		{"mau_by_month": {"2024-08": 0, "2025-03": 800000000}},
		{"monthly_active_users": 0, "llama_licence_grant": false},
	] {
		_messages(fixtures.operator(fixtures.eu_text_only, patch)) == set()
	}
}

test_fail_principal_place_of_business_not_a_country_code if {
	every seat in ["Germany", "de", 49, null] {
		_messages(fixtures.operator(fixtures.eu_text_only, {"principal_place_of_business": seat})) == {concat("", [
			"input field cluster.operator.principal_place_of_business must be an ISO 3166-1 alpha-2 code (got ",
			lib.text(seat), ")",
		])}
	}
}

test_fail_mau_by_month_unreadable if {
	every months in [[1], "lots", {"2024-8": 1}, {"2024-13": 1}, {"2024-08": -1}, {"2024-08": 1.5}, {"2024-08": "1"}] {
		_messages(fixtures.operator(fixtures.eu_text_only, {"mau_by_month": months})) == {concat("", [
			"input field cluster.operator.mau_by_month must be {\"YYYY-MM\": integer >= 0} (got ",
			lib.text(months), ")",
		])}
	}
}

test_fail_monthly_active_users_and_grant_unreadable if {
	request := fixtures.operator(fixtures.eu_text_only, {"monthly_active_users": "many", "llama_licence_grant": "yes"})
	_messages(request) == {
		"input field cluster.operator.monthly_active_users must be an integer >= 0 (got many)",
		"input field cluster.operator.llama_licence_grant must be true or false (got yes)",
	}
}

# lib.is_date and the country check, character by character, accept exactly what
# ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ and ^[A-Z]{2}$ accept.
test_success_date_shapes_as_the_pattern_reads_them if {
	candidates := [
		"2025-06-01", "0000-00-00", "2025-13-99", "2025-6-01", "2025-06-1", "2025/06/01", "20250-6-01",
		"2025-06-01\n", " 2025-06-01", "２０２５-06-01", "2025-06-0a", "", 20250601, null, ["2025-06-01"],
	]
	{value | some value in candidates; lib.is_date(value)} == {"2025-06-01", "0000-00-00", "2025-13-99"}
}

test_success_country_shapes_as_the_pattern_reads_them if {
	candidates := ["US", "DE", "ZZ", "us", "U", "USA", "U1", "Ü S", "ÜS", "US\n", "", 1, null]
	{value | some value in candidates; invalid_input._is_country(value)} == {"US", "DE", "ZZ"}
}
