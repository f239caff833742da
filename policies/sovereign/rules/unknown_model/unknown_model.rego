# METADATA
# title: UNKNOWN_MODEL
# description: The model must be a catalogue id or a Hugging Face repo id of the catalogue; unknown means deny.
package sovereign.rules.unknown_model

import data.sovereign.lib

violations contains lib.item("UNKNOWN_MODEL", message, lib.code_citation("UNKNOWN_MODEL")) if {
	not lib.model
	message := concat("", [
		"model <", lib.text(lib.requested_model),
		"> is not in the catalogue (policies/data/catalogue.yaml): unknown models are denied",
	])
}
