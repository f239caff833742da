package sovereign.rules.tenant_binding_test

import data.sovereign.rules.tenant_binding
import data.sovereign.test.fixtures

_bound := fixtures.patched(fixtures.us_defense, {"cluster": {"tenants": ["army-analytics", "pentagon-1"]}})

_citation := concat("", [
	"the cluster's own declaration: SovereignCluster <pentagon-1> spec.tenants.namespaces ",
	"(a cluster file's `tenants`) — policies/README.md#tenant-binding",
])

test_success_a_tenant_namespace_deploys if {
	every namespace in ["army-analytics", "pentagon-1"] {
		tenant_binding.violations == set() with input as fixtures.patched(_bound, {"namespace": namespace})
	}
}

test_success_no_deployment_no_tenant_question if {
	tenant_binding.violations == set() with input as _bound
	tenant_binding.violations == set() with input as fixtures.us_defense
}

test_fail_a_foreign_namespace if {
	tenant_binding.violations == {{
		"code": "TENANT_NOT_ALLOWED",
		"message": concat("", [
			"namespace <eu-team> may not deploy on cluster <pentagon-1>: its tenants are <army-analytics>, ",
			"<pentagon-1> (spec.tenants.namespaces)",
		]),
		"citation": _citation,
	}} with input as fixtures.patched(_bound, {"namespace": "eu-team"})
}

test_fail_a_cluster_without_tenants_admits_no_deployment if {
	every request in [
		fixtures.patched(fixtures.us_defense, {"namespace": "pentagon-1"}),
		fixtures.patched(fixtures.us_defense, {"namespace": "pentagon-1", "cluster": {"tenants": []}}),
		fixtures.patched(fixtures.us_defense, {"namespace": "pentagon-1", "cluster": {"tenants": "pentagon-1"}}),
	] {
		tenant_binding.violations == {{
			"code": "TENANT_NOT_ALLOWED",
			"message": concat("", [
				"namespace <pentagon-1> may not deploy on cluster <pentagon-1>: the cluster declares no tenant ",
				"namespaces (spec.tenants.namespaces)",
			]),
			"citation": _citation,
		}} with input as request
	}
}
