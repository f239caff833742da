package sovereign.rules.weights_match_test

import data.sovereign.rules.weights_match
import data.sovereign.test.fixtures

# eu_text_only serves llama-3.1-8b-instruct (text, 8,000,000,000 parameters in the catalogue).
_text_8b(weights) := fixtures.patched(fixtures.eu_text_only, {"weights": weights})

# us_defense serves llama-3.2-11b-vision-instruct (text + image, 10,600,000,000 parameters).
_vision_11b(weights) := fixtures.patched(fixtures.us_defense, {"weights": weights})

_citation(model) := concat("", [
	"Catalogue source of ", model, ", the variant the decision judged — ",
	data.catalogue.models[model].citations[0],
])

test_success_the_declared_checkpoints if {
	weights_match.violations == set() with input as _text_8b({"input_modalities": ["text"], "parameters": 8030261248})
	weights_match.violations == set() with input as _vision_11b({"input_modalities": ["image", "text"], "parameters": 10670220835})
}

test_success_within_the_tolerance if {
	weights_match.violations == set() with input as _text_8b({"input_modalities": ["text"], "parameters": 7200000000})
	weights_match.violations == set() with input as _text_8b({"input_modalities": ["text"], "parameters": 8800000000})
}

test_success_without_weights_the_rule_is_silent if {
	weights_match.violations == set() with input as fixtures.eu_text_only
}

test_success_tiny_stand_in_for_the_declared_variant if {
	weights := {"input_modalities": ["image", "text"], "parameters": 4200000, "stand_in_for": "llama-3.2-11b-vision-instruct"}
	weights_match.violations == set() with input as _vision_11b(weights)
}

test_success_stand_in_null_is_no_stand_in if {
	weights_match.violations == set() with input as _text_8b({"input_modalities": ["text"], "parameters": 8030261248, "stand_in_for": null})
}

test_success_unknown_model_is_left_to_unknown_model if {
	request := fixtures.patched(_text_8b({"input_modalities": ["image"], "parameters": 1}), {"model": "gpt-5"})
	weights_match.violations == set() with input as request
}

test_fail_vision_weights_for_a_text_variant if {
	violations := weights_match.violations with input as _text_8b({"input_modalities": ["image", "text"], "parameters": 8030261248})
	violations == {{
		"code": "WEIGHTS_MISMATCH",
		"message": "weights declared as model <llama-3.1-8b-instruct> take input <image, text> but the catalogue variant takes <text>",
		"citation": _citation("llama-3.1-8b-instruct"),
	}}
}

test_fail_text_weights_for_a_vision_variant if {
	violations := weights_match.violations with input as _vision_11b({"input_modalities": ["text"], "parameters": 10670220835})
	{v.message | some v in violations} == {"weights declared as model <llama-3.2-11b-vision-instruct> take input <text> but the catalogue variant takes <image, text>"}
}

test_fail_another_size_of_the_family if {
	violations := weights_match.violations with input as _text_8b({"input_modalities": ["text"], "parameters": 70553706496})
	violations == {{
		"code": "WEIGHTS_MISMATCH",
		"message": "weights declared as model <llama-3.1-8b-instruct> hold <70553706496> parameters but the catalogue variant has <8000000000> (tolerance 10 %)",
		"citation": _citation("llama-3.1-8b-instruct"),
	}}
}

test_fail_just_outside_the_tolerance if {
	violations := weights_match.violations with input as _text_8b({"input_modalities": ["text"], "parameters": 7199999999})
	{v.code | some v in violations} == {"WEIGHTS_MISMATCH"}
	violations_above := weights_match.violations with input as _text_8b({"input_modalities": ["text"], "parameters": 8800000001})
	{v.code | some v in violations_above} == {"WEIGHTS_MISMATCH"}
}

test_fail_stand_in_is_never_exempt_from_the_modality_check if {
	weights := {"input_modalities": ["text"], "parameters": 4200000, "stand_in_for": "llama-3.2-11b-vision-instruct"}
	violations := weights_match.violations with input as _vision_11b(weights)
	{v.message | some v in violations} == {"weights declared as model <llama-3.2-11b-vision-instruct> take input <text> but the catalogue variant takes <image, text>"}
}

test_fail_real_size_checkpoint_carrying_the_stand_in_marker if {
	weights := {"input_modalities": ["text"], "parameters": 100000000, "stand_in_for": "llama-3.1-8b-instruct"}
	violations := weights_match.violations with input as _text_8b(weights)
	{v.message | some v in violations} == {"weights declared as model <llama-3.1-8b-instruct> hold <100000000> parameters but the catalogue variant has <8000000000> (tolerance 10 %)"}
}

test_fail_stand_in_for_another_variant if {
	weights := {"input_modalities": ["text"], "parameters": 4200000, "stand_in_for": "llama-3.2-1b-instruct"}
	violations := weights_match.violations with input as _text_8b(weights)
	{v.message | some v in violations} == {
		"weights declared as model <llama-3.1-8b-instruct> are a test checkpoint standing in for <llama-3.2-1b-instruct>, not for the catalogue variant <llama-3.1-8b-instruct>",
		"weights declared as model <llama-3.1-8b-instruct> hold <4200000> parameters but the catalogue variant has <8000000000> (tolerance 10 %)",
	}
}

test_fail_model_named_by_hf_repo_id if {
	request := fixtures.patched(_text_8b({"input_modalities": ["text"], "parameters": 1000}), {"model": "meta-llama/Meta-Llama-3.1-8B-Instruct"})
	violations := weights_match.violations with input as request
	{v.code | some v in violations} == {"WEIGHTS_MISMATCH"}
}

test_fail_unreadable_weights_are_not_the_variant if {
	violations := weights_match.violations with input as _text_8b({"input_modalities": "text", "parameters": "8B"})
	{v.message | some v in violations} == {"weights declared as model <llama-3.1-8b-instruct> take input <> but the catalogue variant takes <text>"}
}

test_fail_without_the_data_only_an_exact_size_passes if {
	exact := _text_8b({"input_modalities": ["text"], "parameters": 8000000000})
	weights_match.violations == set() with input as exact with data.catalogue.weights_check as null
	near := _text_8b({"input_modalities": ["text"], "parameters": 8030261248, "stand_in_for": "llama-3.1-8b-instruct"})
	violations := weights_match.violations with input as near with data.catalogue.weights_check as null
	{v.message | some v in violations} == {"weights declared as model <llama-3.1-8b-instruct> hold <8030261248> parameters but the catalogue variant has <8000000000> (tolerance 0 %)"}
}
