# METADATA
# title: GPU_QUOTA_EXCEEDED
# description: When the request asks for GPUs and the cluster has a quota, gpus_in_use + gpus may not exceed it.
package sovereign.rules.gpu_quota

import data.sovereign.lib

default _in_use := 0

_in_use := lib.cluster.gpus_in_use if is_number(lib.cluster.gpus_in_use)

violations contains lib.item("GPU_QUOTA_EXCEEDED", message, lib.code_citation("GPU_QUOTA_EXCEEDED")) if {
	requested := lib.request.gpus
	quota := lib.cluster.gpu_quota
	is_number(requested)
	is_number(quota)
	_in_use + requested > quota
	message := concat("", [
		"cluster <", lib.text(object.get(lib.cluster, "name", null)), "> has ", lib.text(_in_use),
		" GPUs in use; ", lib.text(requested), " more would exceed its quota of ", lib.text(quota),
	])
}
