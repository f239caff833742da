package sovereign.rules.gpu_quota_test

import data.sovereign.rules.gpu_quota
import data.sovereign.test.fixtures

test_success_within_quota if {
	count(gpu_quota.violations) == 0 with input as fixtures.us_defense
}

test_success_exactly_at_quota if {
	count(gpu_quota.violations) == 0 with input as fixtures.patched(fixtures.us_defense, {"gpus": 12})
}

test_success_without_gpus_or_quota if {
	count(gpu_quota.violations) == 0 with input as object.remove(fixtures.us_defense, ["gpus"])
	count(gpu_quota.violations) == 0 with input as json.remove(fixtures.us_defense, ["cluster/gpu_quota"])
}

test_fail_over_quota if {
	violations := gpu_quota.violations with input as fixtures.patched(fixtures.us_defense, {"gpus": 13})
	violations == {{
		"code": "GPU_QUOTA_EXCEEDED",
		"message": "cluster <pentagon-1> has 4 GPUs in use; 13 more would exceed its quota of 16",
		"citation": data.codes.GPU_QUOTA_EXCEEDED.citation,
	}}
}

test_fail_over_quota_with_nothing_in_use if {
	request := json.remove(fixtures.patched(fixtures.us_defense, {"gpus": 17}), ["cluster/gpus_in_use"])
	count(gpu_quota.violations) == 1 with input as request
}
