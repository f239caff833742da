# METADATA
# title: MAU_LICENCE_REQUIRED
# description: >-
#   Llama licences §2: if, on the version release date, the licensee's and its affiliates' products had more
#   than 700 million monthly active users in the preceding calendar month, the licensee needs a licence from
#   Meta first (llama_licence_grant). That month is the licence family's deciding_month (derived from its
#   release_date); its figure comes from operator.mau_by_month. Without it, operator.monthly_active_users
#   stands in (conservative), and the message names the month whose figure would decide.
package sovereign.rules.mau_licence

import data.sovereign.lib

_clause := lib.licence.mau_clause

_by_month := lib.object_at(lib.operator, "mau_by_month")

_granted if lib.operator.llama_licence_grant == true

_has_month_figure if is_number(_by_month[_clause.deciding_month])

_release := concat("", [
	"the calendar month before licence family <", lib.model.licence, ">'s release on ",
	lib.text(lib.licence.release_date),
])

violations contains lib.item("MAU_LICENCE_REQUIRED", message, _clause.citation) if {
	month := _clause.deciding_month
	users := _by_month[month]
	is_number(users)
	users > _clause.threshold
	not _granted
	message := concat("", [
		lib.describe_operator, " reports ", lib.text(users), " monthly active users (licensee and affiliates) for ",
		month, ", ", _release, ": over the ", lib.text(_clause.threshold),
		" of its §2, and it has no llama_licence_grant from Meta",
	])
}

violations contains lib.item("MAU_LICENCE_REQUIRED", message, _clause.citation) if {
	not _has_month_figure
	month := _clause.deciding_month
	users := lib.operator.monthly_active_users
	is_number(users)
	users > _clause.threshold
	not _granted
	message := concat("", [
		lib.describe_operator, " gives no mau_by_month figure for ", month, ", ", _release,
		", whose figure decides §2; its monthly_active_users (", lib.text(users), ") stands in for it ",
		"(conservative) and is over the ", lib.text(_clause.threshold),
		", and it has no llama_licence_grant from Meta",
	])
}
