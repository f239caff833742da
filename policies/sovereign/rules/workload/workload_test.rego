package sovereign.rules.workload_test

import data.sovereign.rules.workload
import data.sovereign.test.fixtures

_clean := {
	"images": ["rayproject/ray:2.60.0-py311"],
	"runtime_env": [],
	"import_paths": ["serving.app:build_app"],
	"overrides": [],
	"cluster_facts_match": true,
}

_as_submitted(patch) := fixtures.patched(fixtures.us_defense, {"workload": object.union(_clean, patch)})

_citation := data.regions["us-defense"].workloads.citation

test_success_what_the_operator_generates if {
	workload.violations == set() with input as _as_submitted({})
}

test_success_silent_without_a_workload if {
	workload.violations == set() with input as fixtures.us_defense
}

test_success_the_projects_serving_image if {
	workload.violations == set() with input as _as_submitted({"images": ["registry.example/sovereign/serving:0.1.0"]})
}

test_fail_another_image if {
	workload.violations == {{
		"code": "WORKLOAD_IMAGE_NOT_ALLOWED",
		"message": "image <evil/ray:1> is not allowed in region <us-defense>; allowed: rayproject/ray:, registry.example/sovereign/serving:",
		"citation": _citation,
	}} with input as _as_submitted({"images": ["rayproject/ray:2.60.0-py311", "evil/ray:1"]})
}

test_fail_each_runtime_env_key if {
	codes := [v.code | some v in workload.violations] with input as _as_submitted({"runtime_env": ["env_vars", "pip"]})
	codes == ["WORKLOAD_RUNTIME_ENV_NOT_ALLOWED", "WORKLOAD_RUNTIME_ENV_NOT_ALLOWED"]
}

test_fail_another_builder if {
	workload.violations == {{
		"code": "WORKLOAD_IMPORT_PATH_NOT_ALLOWED",
		"message": concat("", [
			"a Serve application is built by <evil.app:build>, which region <us-defense> does not allow ",
			"(allowed: serving.app:build_app): its args are not the facts that were judged",
		]),
		"citation": _citation,
	}} with input as _as_submitted({"import_paths": ["serving.app:build_app", "evil.app:build"]})
}

test_fail_an_override if {
	workload.violations == {{
		"code": "WORKLOAD_OVERRIDE",
		"message": concat("", [
			"<spec.serveConfigV2.applications[0].deployments> is set, which the operator never generates for a ",
			"deployment: what runs would not be what was judged",
		]),
		"citation": _citation,
	}} with input as _as_submitted({"overrides": ["spec.serveConfigV2.applications[0].deployments"]})
}

test_fail_forged_cluster_facts if {
	{v.code | some v in workload.violations} == {"WORKLOAD_FACTS_MISMATCH"} with input as _as_submitted({"cluster_facts_match": false})
}

test_fail_a_region_without_an_allowlist_admits_no_image if {
	regions := json.remove(data.regions, ["us-defense/workloads"])
	violations := workload.violations with input as _as_submitted({}) with data.regions as regions
	{v.code | some v in violations} == {"WORKLOAD_IMAGE_NOT_ALLOWED", "WORKLOAD_IMPORT_PATH_NOT_ALLOWED"}
}
