# METADATA
# title: REGION_MODALITY
# description: Every input and output modality of the model must be allowed by the region profile.
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
