# METADATA
# title: NATIONAL_SECURITY_CARVE_OUT_UNCONFIRMED (obligation)
# description: >-
#   A carve-out membership whose confidence is `unconfirmed` (Meta's own statement of it was not read) is
#   applied from its `since`, but a decision that rests on it says so: for a defense, national_security or
#   intelligence use that the memberships in force cover, and that the other memberships in force would not,
#   one obligation per unconfirmed membership that covers the operator, citing that membership's source.
package sovereign.rules.carve_out_unconfirmed

import data.sovereign.lib

_confirmed := [member | some member in lib.carve_out_in_force; member.confidence != "unconfirmed"]

obligations contains lib.item("NATIONAL_SECURITY_CARVE_OUT_UNCONFIRMED", message, member.source) if {
	lib.end_use in data.national_security_carve_out.end_uses
	not lib.carve_out_covers(_confirmed)
	some member in lib.carve_out_in_force
	member.confidence == "unconfirmed"
	lib.carve_out_covers(array.concat(_confirmed, [member]))
	message := concat("", [
		"end use <", lib.end_use, "> by ", lib.describe_operator, " is covered by Meta's national-security ",
		"carve-out only through membership <", member.id, "> (since ", member.since, "), whose confidence is ",
		"unconfirmed: Meta's own statement of it was not read; confirm it with Meta before relying on this decision",
	])
}
