# METADATA
# title: END_USE_NOT_PERMITTED
# description: >-
#   Two independent checks. The region profile lists its end uses. And every Llama acceptable use policy
#   prohibits military, warfare and espionage use, except under Meta's November 2024 national-security
#   carve-out (licences.yaml), whatever the region.
package sovereign.rules.end_use

import data.sovereign.lib

violations contains lib.item("END_USE_NOT_PERMITTED", message, lib.region.end_uses.citation) if {
	not lib.end_use in lib.region.end_uses.allowed
	message := concat("", [
		"end use <", lib.text(lib.end_use), "> is not permitted in region <", lib.region_name,
		">; permitted: ", lib.texts(lib.region.end_uses.allowed),
	])
}

violations contains lib.item("END_USE_NOT_PERMITTED", message, carve_out.citation) if {
	carve_out := data.national_security_carve_out
	lib.end_use in carve_out.end_uses
	not lib.operator_matches(carve_out.eligible_operators)
	message := concat("", [
		"end use <", lib.end_use, "> is prohibited by the Llama acceptable use policy outside Meta's ",
		"November 2024 national-security carve-out, which covers only: ",
		lib.describe_rules(carve_out.eligible_operators), "; ", lib.describe_operator, " is not covered",
	])
}
