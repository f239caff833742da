# METADATA
# title: EU_MULTIMODAL_LICENCE
# description: >-
#   Llama 3.2, 3.3 and 4 acceptable use policies withhold the licence to their multimodal models from
#   individuals domiciled, and companies with their principal place of business, in the EU. The operator's
#   country stands for both. Which families carry the clause, and its countries, are data (licences.yaml).
package sovereign.rules.eu_multimodal_licence

import data.sovereign.lib

violations contains lib.item("EU_MULTIMODAL_LICENCE", message, clause.citation) if {
	clause := lib.licence.eu_multimodal_clause
	lib.is_multimodal
	lib.operator_country in clause.operator_countries
	message := concat("", [
		"model <", lib.model_id, "> is multimodal (input ", lib.texts(lib.model.modalities.input),
		") under licence family <", lib.model.licence, ">, whose acceptable use policy withholds multimodal ",
		"models from licensees in the EU; ", lib.describe_operator, " is in the EU",
	])
}
