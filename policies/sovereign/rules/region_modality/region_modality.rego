# METADATA
# title: REGION_MODALITY
# description: >-
#   Every input and output modality of the model, and every modality of a serving request's content, must
#   be allowed by the region profile.
package sovereign.rules.region_modality

import data.sovereign.lib

violations contains lib.item("REGION_MODALITY", message, lib.region.modalities.citation) if {
	some direction in ["input", "output"]
	allowed := lib.region.modalities[direction]
	refused := [modality | some modality in lib.model.modalities[direction]; not modality in allowed]
	count(refused) > 0
	message := concat("", [
		"model <", lib.model_id, "> has ", direction, " modalities <", lib.texts(refused),
		"> that region <", lib.region_name, "> does not allow; allowed ", direction, ": ", lib.texts(allowed),
	])
}

# The content of one serving request (input.request.modalities, gathered by the serving guard): each
# modality the region does not allow is a violation, whatever the model could take (whether the model takes
# it is the rule request_modality).
violations contains lib.item("REGION_MODALITY", message, lib.region.modalities.citation) if {
	refused := [modality | some modality in lib.request_modalities; not modality in lib.region.modalities.input]
	count(refused) > 0
	message := concat("", [
		"request to model <", lib.model_id, "> carries input <", lib.texts(refused),
		"> that region <", lib.region_name, "> does not allow; allowed input: ",
		lib.texts(lib.region.modalities.input),
	])
}
