# METADATA
# title: ACCREDITATION_MISSING and ACCREDITATION_EXPIRED
# description: >-
#   When the region profile requires accreditation, the cluster must hold one of the schemes the profile
#   accepts for the cluster's country, valid on as_of (as_of <= expires; dates compare as YYYY-MM-DD
#   strings, so the policy needs no clock and runs the same in Wasm). Without a valid as_of none is valid.
package sovereign.rules.accreditation

import data.sovereign.lib

_required := lib.region.accreditations

default _accepted := []

_accepted := _required.by_country[lib.cluster_country]

_held := [held | some entry in lib.accreditations; held := lib.as_object(entry); held.scheme in _accepted]

_valid := [held |
	some held in _held
	lib.is_date(held.expires)
	lib.as_of <= held.expires
]

violations contains lib.item("ACCREDITATION_MISSING", message, _required.citation) if {
	count(_held) == 0
	message := concat("", [
		"cluster <", lib.text(object.get(lib.cluster, "name", null)), "> in <", lib.text(lib.cluster_country),
		"> holds none of the accreditations region <", lib.region_name, "> accepts there: ",
		_accepted_text,
	])
}

violations contains lib.item("ACCREDITATION_EXPIRED", message, _required.citation) if {
	count(_held) > 0
	count(_valid) == 0
	message := concat("", [
		"cluster <", lib.text(object.get(lib.cluster, "name", null)), "> holds no accreditation of ",
		_accepted_text, " valid on <", lib.text(object.get(lib.request, "as_of", null)), ">; held: ",
		concat(", ", [concat("", [held.scheme, " expires ", lib.text(object.get(held, "expires", null))]) |
			some held in _held
		]),
	])
}

_accepted_text := lib.texts(_accepted) if count(_accepted) > 0

else := "none (no scheme is accepted for that country)"
