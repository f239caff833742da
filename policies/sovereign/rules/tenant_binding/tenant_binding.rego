# METADATA
# title: TENANT_NOT_ALLOWED
# description: >-
#   A cluster says which namespaces (tenants) may deploy on it (cluster.tenants, its SovereignCluster's
#   spec.tenants.namespaces). A deployment judged with the namespace it is made in (input.namespace) is
#   refused unless that namespace is one of them; a cluster that lists none admits no deployment. A
#   decision about no deployment in particular (no input.namespace: a matrix cell, `sovereign decide
#   --model`) is not about a tenant, and the rule is silent.
package sovereign.rules.tenant_binding

import data.sovereign.lib

_namespace := lib.request.namespace

_tenants := [name | some name in lib.array_at(lib.cluster, "tenants")]

_cluster := lib.text(object.get(lib.cluster, "name", null))

# The source of the rule is the cluster's own declaration: it is cited, by name.
_citation := concat("", [
	"the cluster's own declaration: SovereignCluster <", _cluster, "> spec.tenants.namespaces ",
	"(a cluster file's `tenants`) — policies/README.md#tenant-binding",
])

violations contains lib.item("TENANT_NOT_ALLOWED", message, _citation) if {
	is_string(_namespace)
	not _namespace in _tenants
	message := _refusal(_namespace, _tenants)
}

_refusal(namespace, tenants) := concat("", [
	"namespace <", namespace, "> may not deploy on cluster <", _cluster,
	">: the cluster declares no tenant namespaces (spec.tenants.namespaces)",
]) if {
	count(tenants) == 0
}

_refusal(namespace, tenants) := concat("", [
	"namespace <", namespace, "> may not deploy on cluster <", _cluster, ">: its tenants are ",
	concat(", ", [concat("", ["<", lib.text(t), ">"]) | some t in tenants]), " (spec.tenants.namespaces)",
]) if {
	count(tenants) > 0
}
