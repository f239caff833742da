package sovereign.rules.request_modality_test

import data.sovereign.rules.request_modality
import data.sovereign.test.fixtures

_requested(request, modalities) := fixtures.patched(request, {"request": {"modalities": modalities}})

test_fail_image_to_a_text_model if {
	violations := request_modality.violations with input as _requested(fixtures.eu_text_only, ["image", "text"])
	violations == {{
		"code": "REQUEST_MODALITY_UNSUPPORTED",
		"message": "request to model <llama-3.1-8b-instruct> carries input <image> that the model does not take; its catalogue input: text",
		"citation": concat("", [
			"Catalogue source of llama-3.1-8b-instruct, input modalities of the model card — ",
			data.catalogue.models["llama-3.1-8b-instruct"].citations[0],
		]),
	}}
}

test_fail_every_unsupported_modality_once_sorted if {
	request := _requested(fixtures.us_defense, ["video", "audio", "image", "text", "audio"])
	violations := request_modality.violations with input as request
	{v.message | some v in violations} == {concat("", [
		"request to model <llama-3.2-11b-vision-instruct> carries input <audio, video> that the model does not ",
		"take; its catalogue input: text, image",
	])}
}

test_fail_model_named_by_hf_repo_id if {
	request := _requested(fixtures.eu_text_only, ["image"])
	violations := request_modality.violations with input as fixtures.patched(request, {"model": "meta-llama/Llama-3.1-8B-Instruct"})
	{v.code | some v in violations} == {"REQUEST_MODALITY_UNSUPPORTED"}
}

test_fail_catalogue_entry_without_citations_cites_the_code if {
	violations := request_modality.violations with input as _requested(fixtures.eu_text_only, ["image"])
		with data.catalogue.models["llama-3.1-8b-instruct"].citations as []
	{v.citation | some v in violations} == {data.codes.REQUEST_MODALITY_UNSUPPORTED.citation}
}

test_success_image_to_a_vision_model if {
	request_modality.violations == set() with input as _requested(fixtures.us_defense, ["image", "text"])
	request_modality.violations == set() with input as _requested(fixtures.five_eyes, ["image"])
}

test_success_text_is_always_taken if {
	request_modality.violations == set() with input as _requested(fixtures.eu_text_only, ["text"])
	request_modality.violations == set() with input as _requested(fixtures.eu_text_only, [])
}

test_success_no_request_judges_only_the_model if {
	request_modality.violations == set() with input as fixtures.eu_text_only
	request_modality.violations == set() with input as fixtures.us_defense
}

test_success_unknown_model_is_left_to_unknown_model if {
	request := _requested(fixtures.patched(fixtures.eu_text_only, {"model": "gpt-5"}), ["image"])
	request_modality.violations == set() with input as request
}
