# METADATA
# title: REQUEST_MODALITY_UNSUPPORTED
# description: >-
#   The content of one serving request (input.request.modalities, gathered by the serving guard) must be
#   something the hosted model takes: text always is, any other modality must be one of the model's catalogue
#   input modalities. Whether the region allows it is the rule region_modality.
package sovereign.rules.request_modality

import data.sovereign.lib

violations contains lib.item("REQUEST_MODALITY_UNSUPPORTED", message, citation) if {
	takes := lib.model.modalities.input
	refused := {modality | some modality in lib.request_modalities; modality != "text"; not modality in takes}
	count(refused) > 0
	message := concat("", [
		"request to model <", lib.model_id, "> carries input <", lib.texts(sort(refused)),
		"> that the model does not take; its catalogue input: ", lib.texts(takes),
	])
	citation := lib.model_citation("REQUEST_MODALITY_UNSUPPORTED", "input modalities of the model card")
}
