# METADATA
# title: MAU_LICENCE_REQUIRED
# description: >-
#   Llama licences §2: a licensee whose products had more than 700 million monthly active users must obtain
#   a licence from Meta first (llama_licence_grant). The threshold is the model's licence family's.
package sovereign.rules.mau_licence

import data.sovereign.lib

violations contains lib.item("MAU_LICENCE_REQUIRED", message, clause.citation) if {
	clause := lib.licence.mau_clause
	users := lib.operator.monthly_active_users
	is_number(users)
	users > clause.threshold
	not lib.operator.llama_licence_grant == true
	message := concat("", [
		lib.describe_operator, " reports ", lib.text(users), " monthly active users, over the ",
		lib.text(clause.threshold), " of licence family <", lib.model.licence,
		">, and has no llama_licence_grant from Meta",
	])
}
