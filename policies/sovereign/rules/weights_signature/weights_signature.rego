# METADATA
# title: WEIGHTS_SIGNATURE_INVALID, WEIGHTS_UNSIGNED_NOTICE
# description: >-
#   Who produced the weights. When a serving replica judges the checkpoint it is about to load
#   (input.weights) for a deployment that names a signer (input.weights_signer), the OpenSSF model signature
#   over every file must verify with that signer's key (input.weights.signature, gathered by the replica:
#   verified, signer, problem); anything else (missing, tampered, another signer) is refused. A deployment
#   that names no signer is served with a notice that the weights' origin is not proven.
package sovereign.rules.weights_signature

import data.sovereign.lib

_weights := lib.object_at(lib.request, "weights")

_judging_weights if is_object(lib.request.weights)

_expected := lib.request.weights_signer

_names_signer if is_string(_expected)

_signature := lib.object_at(_weights, "signature")

_proven if {
	_signature.verified == true
	_signature.signer == _expected
}

_why := lib.text(object.get(_signature, "problem", "no signature was verified"))

violations contains lib.item("WEIGHTS_SIGNATURE_INVALID", message, lib.code_citation("WEIGHTS_SIGNATURE_INVALID")) if {
	_judging_weights
	_names_signer
	not _proven
	message := concat("", [
		"the weights of model <", lib.text(lib.model_id), "> are not proven signed by <", _expected, ">: ",
		_why,
	])
}

obligations contains lib.item("WEIGHTS_UNSIGNED_NOTICE", message, lib.code_citation("WEIGHTS_UNSIGNED_NOTICE")) if {
	_judging_weights
	not _names_signer
	message := concat("", [
		"the deployment names no signer for the weights of model <", lib.text(lib.model_id), ">: who ",
		"produced them is not proven (name one in spec.weights.signer)",
	])
}
