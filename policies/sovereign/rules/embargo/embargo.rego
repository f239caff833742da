# METADATA
# title: EMBARGOED_DESTINATION
# description: >-
#   Neither the cluster, nor the weights, nor the operator may be in an embargoed country (countries.yaml,
#   group 'embargoed'), whatever the region.
package sovereign.rules.embargo

import data.sovereign.lib

_places := {"cluster": lib.cluster_country, "weights": lib.weights_country, "operator": lib.operator_country}

violations contains lib.item("EMBARGOED_DESTINATION", message, embargoed.citations[0]) if {
	embargoed := data.countries.embargoed
	some place, country in _places
	country in embargoed.members
	message := concat("", [place, " country <", country, "> is an embargoed destination"])
}
