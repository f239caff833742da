# METADATA
# title: UNKNOWN_REGION
# description: The cluster's region must be a profile of policies/data/regions; unknown means deny.
package sovereign.rules.unknown_region

import data.sovereign.lib

violations contains lib.item("UNKNOWN_REGION", message, lib.code_citation("UNKNOWN_REGION")) if {
	not lib.region
	message := concat("", [
		"cluster region <", lib.text(lib.region_name), "> is not a region profile; known regions: ",
		_known,
	])
}

default _known := "none"

_known := concat(", ", object.keys(data.regions)) if count(data.regions) > 0
