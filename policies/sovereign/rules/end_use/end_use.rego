# METADATA
# title: END_USE_NOT_PERMITTED
# description: >-
#   Two independent checks. The region profile lists its end uses. And every Llama acceptable use policy
#   prohibits military, warfare and espionage use, except under Meta's national-security carve-out as in force
#   on as_of (licences.yaml: dated memberships), whatever the region. The carve-out violation cites the
#   prohibition of the model's own licence family and names the memberships in force.
package sovereign.rules.end_use

import data.sovereign.lib

violations contains lib.item("END_USE_NOT_PERMITTED", message, lib.region.end_uses.citation) if {
	not lib.end_use in lib.region.end_uses.allowed
	message := concat("", [
		"end use <", lib.text(lib.end_use), "> is not permitted in region <", lib.region_name,
		">; permitted: ", lib.texts(lib.region.end_uses.allowed),
	])
}

violations contains lib.item("END_USE_NOT_PERMITTED", message, _prohibition) if {
	lib.end_use in data.national_security_carve_out.end_uses
	not lib.carve_out_covers(lib.carve_out_in_force)
	message := concat("", [
		"end use <", lib.end_use, "> is prohibited by the Llama acceptable use policy outside Meta's ",
		"national-security carve-out, which on <", lib.text(object.get(lib.request, "as_of", null)), "> ",
		_covered, "; ", lib.describe_operator, " is not covered",
	])
}

# The model's own licence family's prohibition; the carve-out's statement when the model is unknown.
_prohibition := citation if citation := lib.licence.military_prohibition.citation

else := data.national_security_carve_out.citation

_covered := concat("", [
	"covers only: ", lib.describe_rules(lib.carve_out_rules(lib.carve_out_in_force)), " (memberships ",
	concat(", ", [concat("", [m.id, " since ", m.since, " (", m.confidence, ")"]) | some m in lib.carve_out_in_force]),
	")",
]) if {
	count(lib.carve_out_in_force) > 0
} else := concat("", [
	"covers nobody (its first membership dates from ",
	min([m.since | some m in data.national_security_carve_out.members]), ")",
])
