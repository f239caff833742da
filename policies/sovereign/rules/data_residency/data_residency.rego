# METADATA
# title: DATA_RESIDENCY
# description: The cluster and its weights (weights_country, by default the cluster's country) must be in the region's countries.
package sovereign.rules.data_residency

import data.sovereign.lib

_places := {"cluster": lib.cluster_country, "weights": lib.weights_country}

violations contains lib.item("DATA_RESIDENCY", message, lib.region.placement.citation) if {
	some place, country in _places
	not country in lib.region.placement.countries
	message := concat("", [
		place, " country <", lib.text(country), "> is outside region <", lib.region_name, ">; allowed: ",
		lib.texts(lib.region.placement.countries),
	])
}
