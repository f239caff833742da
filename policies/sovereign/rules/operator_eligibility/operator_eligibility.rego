# METADATA
# title: OPERATOR_NOT_ELIGIBLE
# description: The operator must match one of the region profile's eligible operator rules (kind, country, sponsor).
package sovereign.rules.operator_eligibility

import data.sovereign.lib

violations contains lib.item("OPERATOR_NOT_ELIGIBLE", message, lib.region.operators.citation) if {
	not lib.operator_matches(lib.region.operators.eligible)
	message := concat("", [
		lib.describe_operator, " is not eligible for region <", lib.region_name, ">; eligible: ",
		lib.describe_rules(lib.region.operators.eligible),
	])
}
