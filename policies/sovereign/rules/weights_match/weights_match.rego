# METADATA
# title: WEIGHTS_MISMATCH
# description: >-
#   A serving replica, before it loads a checkpoint, passes what the checkpoint on disk is (input.weights):
#   its input modalities (from config.json) must equal the variant's catalogue input modalities, and its
#   parameter count (tensor elements, from the safetensors headers) must be within the catalogue's tolerance
#   of the variant's total. A tiny test checkpoint standing in for the declared variant, below the stand-in
#   limit, is exempt from the size check only. The decision judged the declared variant: weights that are
#   not it are not what was judged. Without input.weights the rule is silent.
package sovereign.rules.weights_match

import data.sovereign.lib

_weights := lib.request.weights if is_object(lib.request.weights)

_check := lib.as_object(object.get(data.catalogue, "weights_check", null))

# Without the data, no tolerance and no stand-in exemption: only an exact size passes.
_tolerance_percent := object.get(_check, ["parameter_tolerance", "percent"], 0)

_stand_in_max := object.get(_check, ["stand_in_max_parameters", "count"], 0)

_stand_in_for := object.get(_weights, "stand_in_for", null)

_citation := lib.model_citation("WEIGHTS_MISMATCH", "the variant the decision judged")

_prefix := concat("", ["weights declared as model <", lib.model_id, "> "])

violations contains lib.item("WEIGHTS_MISMATCH", message, _citation) if {
	# Comprehensions are never undefined: without weights or a known model there is nothing to compare.
	inputs := lib.array_at(_weights, "input_modalities")
	lib.model
	found := {modality | some modality in inputs}
	catalogue := {modality | some modality in lib.model.modalities.input}
	found != catalogue
	message := concat("", [
		_prefix, "take input <", lib.texts(sort(found)), "> but the catalogue variant takes <",
		lib.texts(sort(catalogue)), ">",
	])
}

violations contains lib.item("WEIGHTS_MISMATCH", message, _citation) if {
	lib.model
	_stand_in_for != null
	_stand_in_for != lib.model_id
	message := concat("", [
		_prefix, "are a test checkpoint standing in for <", lib.text(_stand_in_for),
		">, not for the catalogue variant <", lib.model_id, ">",
	])
}

violations contains lib.item("WEIGHTS_MISMATCH", message, _citation) if {
	parameters := _weights.parameters
	is_number(parameters)
	not _is_stand_in
	total := lib.model.parameters.total
	abs(parameters - total) * 100 > _tolerance_percent * total
	message := concat("", [
		_prefix, "hold <", lib.text(parameters), "> parameters but the catalogue variant has <", lib.text(total),
		"> (tolerance ", lib.text(_tolerance_percent), " %)",
	])
}

# A tiny test checkpoint for the declared variant, far smaller than any real one: its size is not checked.
_is_stand_in if {
	_stand_in_for == lib.model_id
	_weights.parameters < _stand_in_max
}
