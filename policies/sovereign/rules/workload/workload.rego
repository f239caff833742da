# METADATA
# title: >-
#   WORKLOAD_IMAGE_NOT_ALLOWED, WORKLOAD_RUNTIME_ENV_NOT_ALLOWED, WORKLOAD_IMPORT_PATH_NOT_ALLOWED,
#   WORKLOAD_OVERRIDE, WORKLOAD_FACTS_MISMATCH
# description: >-
#   What runs must be what was judged. When a decision is about a RayService as submitted (input.workload,
#   gathered by admission from its whole spec), every container image must come from the region's
#   allowlist, no Ray runtime_env key may be set beyond the region's (default none), every Serve application
#   must be built by a builder the region allows (its args carry what is judged), nothing may be set
#   that the operator would not generate for the deployment (input.workload.overrides: the paths), and the
#   cluster facts its serving args carry (what every request is judged on) must be the SovereignCluster's,
#   the namespace they name its own.
#   Without input.workload (a LlamaDeployment, a request, a matrix cell) the rule is silent.
package sovereign.rules.workload

import data.sovereign.lib

_workload := lib.object_at(lib.request, "workload")

_allowed := object.get(lib.region, "workloads", {})

_citation := object.get(_allowed, "citation", lib.code_citation("WORKLOAD_OVERRIDE"))

_image_allowed(image) if {
	some prefix in lib.array_at(_allowed, "images")
	startswith(image, prefix)
}

violations contains lib.item("WORKLOAD_IMAGE_NOT_ALLOWED", message, _citation) if {
	some image in lib.array_at(_workload, "images")
	not _image_allowed(image)
	message := concat("", [
		"image <", lib.text(image), "> is not allowed in region <", lib.text(lib.region_name), ">; allowed: ",
		lib.texts(lib.array_at(_allowed, "images")),
	])
}

violations contains lib.item("WORKLOAD_RUNTIME_ENV_NOT_ALLOWED", message, _citation) if {
	some key in lib.array_at(_workload, "runtime_env")
	not key in lib.array_at(_allowed, "runtime_env")
	message := concat("", [
		"runtime_env <", lib.text(key), "> is not allowed in region <", lib.text(lib.region_name),
		">: it would run code or settings that were not judged",
	])
}

violations contains lib.item("WORKLOAD_IMPORT_PATH_NOT_ALLOWED", message, _citation) if {
	some path in lib.array_at(_workload, "import_paths")
	not path in lib.array_at(_allowed, "import_paths")
	message := concat("", [
		"a Serve application is built by <", lib.text(path), ">, which region <", lib.text(lib.region_name),
		"> does not allow (allowed: ", lib.texts(lib.array_at(_allowed, "import_paths")),
		"): its args are not the facts that were judged",
	])
}

violations contains lib.item("WORKLOAD_OVERRIDE", message, _citation) if {
	some path in lib.array_at(_workload, "overrides")
	message := concat("", [
		"<", lib.text(path), "> is set, which the operator never generates for a deployment: what runs ",
		"would not be what was judged",
	])
}

violations contains lib.item("WORKLOAD_FACTS_MISMATCH", message, _citation) if {
	_workload.cluster_facts_match == false
	message := concat("", [
		"the serving args carry facts that are not those of SovereignCluster <",
		lib.text(object.get(lib.cluster, "name", null)), "> or name another namespace: every request would be ",
		"judged on other facts",
	])
}
