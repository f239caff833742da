# METADATA
# title: INVALID_INPUT
# description: >-
#   Fields every decision needs. Python validates requests before asking; this keeps a malformed request
#   that reaches the policy anyway (another client, a bug) from being judged on partial facts.
package sovereign.rules.invalid_input

import data.sovereign.lib

_required_strings := [
	["cluster.name", lib.cluster, "name"],
	["cluster.region", lib.cluster, "region"],
	["cluster.country", lib.cluster, "country"],
	["cluster.operator.name", lib.operator, "name"],
	["cluster.operator.country", lib.operator, "country"],
	["cluster.operator.kind", lib.operator, "kind"],
	["model", lib.request, "model"],
	["end_use", lib.request, "end_use"],
]

violations contains lib.item("INVALID_INPUT", message, lib.code_citation("INVALID_INPUT")) if {
	some [field, parent, key] in _required_strings
	not is_string(object.get(parent, key, null))
	message := concat("", ["input field ", field, " is missing or not a string"])
}

violations contains lib.item("INVALID_INPUT", message, lib.code_citation("INVALID_INPUT")) if {
	not lib.as_of
	message := concat("", [
		"input field as_of is missing or not a YYYY-MM-DD date (got ",
		lib.text(object.get(lib.request, "as_of", null)), "): no accreditation can be valid",
	])
}

# screening may be absent or null (no hits), but a screening result that cannot be read must not pass as clean.
violations contains lib.item("INVALID_INPUT", message, lib.code_citation("INVALID_INPUT")) if {
	screening := lib.request.screening
	screening != null
	not is_array(screening.hits)
	message := concat("", ["input field screening.hits must be a list of hits (got ", lib.text(screening), ")"])
}
