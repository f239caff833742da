package sovereign.decision_test

import data.sovereign.decision
import data.sovereign.test.fixtures

_built_with_llama(family, model) := {
	"code": "BUILT_WITH_LLAMA",
	"message": concat("", [
		"display \"Built with Llama\" prominently and ship the ", data.licences[family].name,
		" with any product or service that serves model <", model, ">",
	]),
	"citation": data.licences[family].attribution.citation,
}

test_success_us_defense if {
	decision.result == {
		"allow": true,
		"violations": [],
		"obligations": [_built_with_llama("llama3.2", "llama-3.2-11b-vision-instruct")],
	} with input as fixtures.us_defense
}

test_success_five_eyes if {
	decision.result == {
		"allow": true,
		"violations": [],
		"obligations": [_built_with_llama("llama4", "llama-4-scout-17b-16e-instruct")],
	} with input as fixtures.five_eyes
}

test_success_eu_text_only if {
	decision.result == {
		"allow": true,
		"violations": [],
		"obligations": [_built_with_llama("llama3.1", "llama-3.1-8b-instruct")],
	} with input as fixtures.eu_text_only
}

test_success_obligations_do_not_deny if {
	request := fixtures.patched(fixtures.eu_text_only, {"model": "llama-3.1-405b-instruct-fp8", "as_of": "2025-08-02"})
	result := decision.result with input as request
	result.allow
	[o.code | some o in result.obligations] == ["AI_ACT_SYSTEMIC_RISK", "BUILT_WITH_LLAMA"]
}

test_fail_vision_model_for_eu_company if {
	result := decision.result with input as fixtures.patched(fixtures.eu_text_only, {"model": "llama-3.2-11b-vision-instruct"})
	not result.allow
	[v.code | some v in result.violations] == ["EU_MULTIMODAL_LICENCE", "REGION_MODALITY"]
}

test_fail_reports_every_violation_sorted if {
	request := fixtures.patched(fixtures.us_defense, {
		"cluster": {
			"country": "IR",
			"operator": {"name": "Sanctioned Co", "country": "RU", "kind": "company", "monthly_active_users": 900000000},
			"accreditations": [],
		},
		"end_use": "intelligence",
		"gpus": 100,
		"screening": {"hits": [{"name": "SANCTIONED CO", "source": "SDN", "score": 97}]},
	})
	result := decision.result with input as request
	not result.allow
	[v.code | some v in result.violations] == [
		"ACCREDITATION_MISSING",
		"DATA_RESIDENCY", "DATA_RESIDENCY",
		"DENIED_PARTY",
		"EMBARGOED_DESTINATION", "EMBARGOED_DESTINATION", "EMBARGOED_DESTINATION",
		"END_USE_NOT_PERMITTED",
		"GPU_QUOTA_EXCEEDED",
		"MAU_LICENCE_REQUIRED",
		"OPERATOR_NOT_ELIGIBLE",
	]
	[v.message | some v in result.violations; v.code == "EMBARGOED_DESTINATION"] == [
		"cluster country <IR> is an embargoed destination",
		"operator country <RU> is an embargoed destination",
		"weights country <IR> is an embargoed destination",
	]
}

test_fail_every_code_is_a_registered_code if {
	requests := [
		"garbage",
		fixtures.patched(fixtures.eu_text_only, {"model": "llama-4-scout-17b-16e", "end_use": "defense"}),
		fixtures.patched(fixtures.us_defense, {"cluster": {"country": "CU", "accreditations": []}, "gpus": 99}),
		fixtures.patched(fixtures.five_eyes, {"cluster": {"accreditations": [{"scheme": "uk-official", "expires": "2020-01-01"}]}}),
		fixtures.patched(fixtures.eu_text_only, {
			"request": {"modalities": ["image", "text"]},
			"weights": {"input_modalities": ["image", "text"], "parameters": 1},
			"screening": {"performed": false, "hits": []},
		}),
		fixtures.patched(fixtures.five_eyes, {"approval": true, "screening": {"performed": false, "hits": []}}),
		fixtures.patched(fixtures.us_defense, {
			"cluster": {"operator": {"kind": "government_contractor", "country": "FR", "sponsor_country": "US"}},
			"as_of": "2026-01-01",
		}),
	]
	every request in requests {
		result := decision.result with input as request
		every violation in result.violations {
			data.codes[violation.code].kind == "violation"
		}
		every obligation in result.obligations {
			data.codes[obligation.code].kind == "obligation"
		}
	}
}

# What a serving replica asks before it loads a checkpoint and for each request: the same decision.
test_success_serving_replica_with_the_declared_weights if {
	request := fixtures.patched(fixtures.us_defense, {
		"request": {"modalities": ["image", "text"], "tenant": "army"},
		"weights": {
			"input_modalities": ["image", "text"],
			"parameters": 10670220835,
			"signature": {"verified": true, "signer": "meta-release"},
		},
		"weights_signer": "meta-release",
		"screening": {"performed": true, "hits": []},
	})
	decision.result == {
		"allow": true,
		"violations": [],
		"obligations": [_built_with_llama("llama3.2", "llama-3.2-11b-vision-instruct")],
	} with input as request
}

test_fail_serving_replica_checks if {
	request := fixtures.patched(fixtures.eu_text_only, {
		"request": {"modalities": ["image", "text"]},
		"weights": {"input_modalities": ["text"], "parameters": 70553706496},
	})
	result := decision.result with input as request
	not result.allow
	[v.code | some v in result.violations] == ["REGION_MODALITY", "REQUEST_MODALITY_UNSUPPORTED", "WEIGHTS_MISMATCH"]
}

test_success_unscreened_decision_is_allowed_with_the_notice if {
	result := decision.result with input as fixtures.patched(fixtures.five_eyes, {"screening": {"performed": false, "hits": []}})
	result.allow
	[o.code | some o in result.obligations] == ["BUILT_WITH_LLAMA", "SCREENING_NOT_PERFORMED_NOTICE"]
}

test_fail_unscreened_approval if {
	request := fixtures.patched(fixtures.five_eyes, {"approval": true, "screening": {"performed": false, "hits": []}})
	result := decision.result with input as request
	not result.allow
	[v.code | some v in result.violations] == ["SCREENING_NOT_PERFORMED"]
	[o.code | some o in result.obligations] == ["BUILT_WITH_LLAMA"]
}

test_success_screened_approval if {
	request := fixtures.patched(fixtures.five_eyes, {"approval": true, "screening": {"performed": true, "hits": []}})
	result := decision.result with input as request
	result.allow
	[o.code | some o in result.obligations] == ["BUILT_WITH_LLAMA"]
}

test_fail_defined_and_denied_for_any_input if {
	every garbage in ["garbage", 0, true, null, [], {}, {"items": []}, {"cluster": [], "model": {}}] {
		result := decision.result with input as garbage
		result.allow == false
		count(result.violations) > 0
		result.obligations == []
	}
}

test_fail_denied_without_policy_data if {
	result := decision.result with input as fixtures.eu_text_only
		with data.catalogue as {}
		with data.regions as {}
		with data.codes as {}
	not result.allow
	[v.code | some v in result.violations] == ["UNKNOWN_MODEL", "UNKNOWN_REGION"]
	every violation in result.violations {
		violation.citation == "policy data missing from the bundle — https://www.openpolicyagent.org/docs/management-bundles"
	}
}

# A user-defined profile is plain data: the rules are generic over profiles.
_swiss_profile := {
	"description": "Swiss federal clusters",
	"operators": {"eligible": [{"kind": "government_agency", "countries": ["CH"]}], "citation": "Test — https://example.org/operators"},
	"placement": {"countries": ["CH"], "citation": "Test — https://example.org/placement"},
	"accreditations": {"by_country": {"CH": ["ch-isds"]}, "citation": "Test — https://example.org/accreditations"},
	"modalities": {"input": ["text"], "output": ["text"], "citation": "Test — https://example.org/modalities"},
	"end_uses": {"allowed": ["public_sector"], "citation": "Test — https://example.org/end-uses"},
}

_swiss_request := {
	"cluster": {
		"name": "bern-1",
		"region": "ch-federal",
		"country": "CH",
		"operator": {"name": "Bundesamt", "country": "CH", "kind": "government_agency"},
		"accreditations": [{"scheme": "ch-isds", "expires": "2026-01-01"}],
	},
	"model": "llama-3.3-70b-instruct",
	"end_use": "public_sector",
	"as_of": "2025-06-01",
}

test_success_user_defined_profile if {
	result := decision.result with input as _swiss_request
		with data.regions as object.union(data.regions, {"ch-federal": _swiss_profile})
	result.allow
}

test_fail_user_defined_profile if {
	request := fixtures.patched(_swiss_request, {"cluster": {"country": "DE"}, "end_use": "commercial"})
	result := decision.result with input as request
		with data.regions as object.union(data.regions, {"ch-federal": _swiss_profile})
	[v.citation | some v in result.violations] == [
		"Test — https://example.org/accreditations",
		"Test — https://example.org/placement",
		"Test — https://example.org/placement",
		"Test — https://example.org/end-uses",
	]
}

# A French contractor of the US on a US defence cluster, after the (unconfirmed) 2025 widening: allowed, and
# the decision says what it rests on.
test_success_unconfirmed_carve_out_allows_with_its_obligation if {
	request := fixtures.patched(fixtures.us_defense, {
		"cluster": {"operator": {"kind": "government_contractor", "country": "FR", "sponsor_country": "US"}},
		"as_of": "2026-01-01",
		"model": "llama-3.3-70b-instruct",
	})
	result := decision.result with input as request
	result.allow
	[o.code | some o in result.obligations] == ["BUILT_WITH_LLAMA", "NATIONAL_SECURITY_CARVE_OUT_UNCONFIRMED"]
}
