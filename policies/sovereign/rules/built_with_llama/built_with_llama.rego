# METADATA
# title: BUILT_WITH_LLAMA (obligation)
# description: >-
#   Llama licences §1(b)(i): whoever distributes the model, or a product or service built on it, shows the
#   attribution and ships the licence.
package sovereign.rules.built_with_llama

import data.sovereign.lib

obligations contains lib.item("BUILT_WITH_LLAMA", message, attribution.citation) if {
	attribution := lib.licence.attribution
	message := concat("", [
		"display \"", attribution.text, "\" prominently and ship the ", lib.licence.name,
		" with any product or service that serves model <", lib.model_id, ">",
	])
}
