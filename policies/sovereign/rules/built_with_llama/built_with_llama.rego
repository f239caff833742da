# METADATA
# title: BUILT_WITH_LLAMA (obligation)
# description: >-
#   Llama licences §1(b)(i): whoever distributes the model, or a product or service built on it, ships the
#   licence and shows the family's attribution ("Built with Llama", "Built with Meta Llama 3"); Llama 2 asks
#   for a copy of the licence and its Notice file only (§1(b)(i), (iii)).
package sovereign.rules.built_with_llama

import data.sovereign.lib

obligations contains lib.item("BUILT_WITH_LLAMA", message, attribution.citation) if {
	attribution := lib.licence.attribution
	is_string(attribution.text)
	message := concat("", [
		"display \"", attribution.text, "\" prominently and ship the ", lib.licence.name,
		" with any product or service that serves model <", lib.model_id, ">",
	])
}

obligations contains lib.item("BUILT_WITH_LLAMA", message, attribution.citation) if {
	attribution := lib.licence.attribution
	not is_string(object.get(attribution, "text", null))
	message := concat("", [
		"ship the ", lib.licence.name, " with any product or service that serves model <", lib.model_id,
		">, with its Notice file (\"", attribution.notice, "\"); the licence asks for no \"Built with\" display",
	])
}
