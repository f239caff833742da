# METADATA
# title: DENIED_PARTY
# description: >-
#   Python screens the operator against the Consolidated Screening List (fuzzy matching is not a policy
#   decision) and passes every hit; each hit denies, citing the list it came from.
package sovereign.rules.denied_party

import data.sovereign.lib

_hits := lib.array_at(lib.object_at(lib.request, "screening"), "hits")

violations contains lib.item("DENIED_PARTY", message, _citation(hit)) if {
	some entry in _hits
	hit := lib.as_object(entry)
	message := concat("", [
		"operator <", lib.text(object.get(lib.operator, "name", null)), "> matched <",
		lib.text(object.get(hit, "name", null)), "> on screening list <", lib.text(object.get(hit, "source", null)),
		"> (score ", lib.text(object.get(hit, "score", null)), ")",
	])
}

_citation(hit) := citation if citation := data.screening.sources[hit.source].citation

else := lib.code_citation("DENIED_PARTY")
