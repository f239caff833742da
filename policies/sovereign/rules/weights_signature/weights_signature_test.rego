package sovereign.rules.weights_signature_test

import data.sovereign.rules.weights_signature
import data.sovereign.test.fixtures

_weights := {"input_modalities": ["text"], "parameters": 8030261248}

_loading(signature, signer) := fixtures.patched(fixtures.us_defense, {
	"weights": object.union(_weights, signature),
	"weights_signer": signer,
})

test_success_signed_by_the_named_signer if {
	request := _loading({"signature": {"verified": true, "signer": "acme-release"}}, "acme-release")
	weights_signature.violations == set() with input as request
	weights_signature.obligations == set() with input as request
}

test_fail_missing_tampered_or_another_signer if {
	every signature in [
		{},
		{"signature": {"verified": false, "signer": "acme-release", "problem": "Signature mismatch"}},
		{"signature": {"verified": true, "signer": "someone-else"}},
		{"signature": {"verified": "yes", "signer": "acme-release"}},
	] {
		{v.code | some v in weights_signature.violations} == {"WEIGHTS_SIGNATURE_INVALID"} with input as _loading(signature, "acme-release")
	}
}

test_fail_message_says_why if {
	request := _loading({"signature": {"verified": false, "signer": "acme-release", "problem": "Signature mismatch"}}, "acme-release")
	weights_signature.violations == {{
		"code": "WEIGHTS_SIGNATURE_INVALID",
		"message": concat("", [
			"the weights of model <llama-3.2-11b-vision-instruct> are not proven signed by <acme-release>: ",
			"Signature mismatch",
		]),
		"citation": data.codes.WEIGHTS_SIGNATURE_INVALID.citation,
	}} with input as request
}

test_success_no_signer_named_is_a_notice if {
	request := fixtures.patched(fixtures.us_defense, {"weights": _weights})
	weights_signature.violations == set() with input as request
	{o.code | some o in weights_signature.obligations} == {"WEIGHTS_UNSIGNED_NOTICE"} with input as request
}

test_success_silent_unless_weights_are_judged if {
	request := fixtures.patched(fixtures.us_defense, {"weights_signer": "acme-release"})
	weights_signature.violations == set() with input as request
	weights_signature.obligations == set() with input as request
}
