package sovereign.rules.region_modality_test

import data.sovereign.rules.region_modality
import data.sovereign.test.fixtures

test_fail_image_input_in_eu_text_only if {
	request := fixtures.patched(fixtures.eu_text_only, {"model": "llama-4-scout-17b-16e"})
	violations := region_modality.violations with input as request
	{v.message | some v in violations} == {concat("", [
		"model <llama-4-scout-17b-16e> has input modalities <image> that region <eu-text-only> ",
		"does not allow; allowed input: text",
	])}
	some violation in violations
	violation.citation == data.regions["eu-text-only"].modalities.citation
}

test_fail_output_modality_not_allowed if {
	violations := region_modality.violations with input as fixtures.us_defense
		with data.regions["us-defense"].modalities.output as ["image"]
	count(violations) == 1
	some violation in violations
	contains(violation.message, "output modalities <text>")
}

test_success_text_model_in_eu_text_only if {
	count(region_modality.violations) == 0 with input as fixtures.eu_text_only
}

test_success_image_models_where_images_are_allowed if {
	count(region_modality.violations) == 0 with input as fixtures.us_defense
	count(region_modality.violations) == 0 with input as fixtures.five_eyes
}

test_success_unknown_model_is_left_to_unknown_model if {
	request := fixtures.patched(fixtures.eu_text_only, {"model": "gpt-5"})
	count(region_modality.violations) == 0 with input as request
}

test_fail_image_request_in_eu_text_only if {
	request := fixtures.patched(fixtures.eu_text_only, {"request": {"modalities": ["text", "image"]}})
	violations := region_modality.violations with input as request
	{v.message | some v in violations} == {concat("", [
		"request to model <llama-3.1-8b-instruct> carries input <image> that region <eu-text-only> ",
		"does not allow; allowed input: text",
	])}
}

test_success_text_request_in_eu_text_only if {
	request := fixtures.patched(fixtures.eu_text_only, {"request": {"modalities": ["text"]}})
	region_modality.violations == set() with input as request
}

test_success_image_request_where_images_are_allowed if {
	request := fixtures.patched(fixtures.us_defense, {"request": {"modalities": ["text", "image"]}})
	count(region_modality.violations) == 0 with input as request
}
