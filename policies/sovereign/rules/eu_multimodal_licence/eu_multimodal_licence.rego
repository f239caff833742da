# METADATA
# title: EU_MULTIMODAL_LICENCE
# description: >-
#   Llama 3.2, 3.3 and 4 acceptable use policies withhold the §1(a) grant for their multimodal models from
#   "an individual domiciled in, or a company with a principal place of business in, the European Union". The
#   paragraph follows the licensee, wherever the cluster is: an individual by operator.country (domicile), any
#   other kind as a company by operator.principal_place_of_business (absent = operator.country). Which
#   families carry it, its countries and its reading are data (licences.yaml).
package sovereign.rules.eu_multimodal_licence

import data.sovereign.lib

violations contains lib.item("EU_MULTIMODAL_LICENCE", message, clause.citation) if {
	clause := lib.licence.eu_multimodal_clause
	lib.is_multimodal
	lib.licensee_seat in clause.operator_countries
	message := concat("", [
		"model <", lib.model_id, "> is multimodal (input ", lib.texts(lib.model.modalities.input),
		") under licence family <", lib.model.licence, ">, whose acceptable use policy withholds its ",
		"multimodal models from an individual domiciled in, or a company with a principal place of business ",
		"in, the EU; ", lib.describe_operator, " is ", _licensee,
	])
}

_licensee := concat("", ["an individual domiciled in <", lib.licensee_seat, ">"]) if lib.operator_kind == "individual"

else := concat("", ["read as a company with its principal place of business in <", lib.licensee_seat, ">"])
