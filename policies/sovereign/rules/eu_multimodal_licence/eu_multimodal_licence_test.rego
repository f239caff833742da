package sovereign.rules.eu_multimodal_licence_test

import data.sovereign.rules.eu_multimodal_licence
import data.sovereign.test.fixtures

_eu_request(model) := fixtures.patched(fixtures.eu_text_only, {"model": model})

test_fail_llama_3_2_vision_for_eu_operator if {
	violations := eu_multimodal_licence.violations with input as _eu_request("llama-3.2-90b-vision")
	count(violations) == 1
	some violation in violations
	violation.code == "EU_MULTIMODAL_LICENCE"
	violation.citation == data.licences["llama3.2"].eu_multimodal_clause.citation
	contains(violation.message, "operator <Exemple SAS> (kind company, country FR) is in the EU")
}

test_fail_llama_4_for_eu_operator if {
	violations := eu_multimodal_licence.violations with input as _eu_request("meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8")
	some violation in violations
	violation.citation == data.licences.llama4.eu_multimodal_clause.citation
}

test_fail_llama_guard_vision_for_eu_operator if {
	count(eu_multimodal_licence.violations) == 1 with input as _eu_request("llama-guard-3-11b-vision")
}

test_fail_operator_country_decides_not_cluster_country if {
	request := fixtures.operator(fixtures.us_defense, {"country": "IE"})
	count(eu_multimodal_licence.violations) == 1 with input as request
}

test_success_text_only_models_for_eu_operator if {
	every model in ["llama-3.3-70b-instruct", "llama-3.2-1b-instruct-spinquant_int4_eo8", "llama-guard-3-1b"] {
		count(eu_multimodal_licence.violations) == 0 with input as _eu_request(model)
	}
}

test_success_multimodal_for_operator_outside_eu if {
	count(eu_multimodal_licence.violations) == 0 with input as fixtures.us_defense
	count(eu_multimodal_licence.violations) == 0 with input as fixtures.five_eyes
}

test_success_eea_but_not_eu_operator if {
	request := fixtures.operator(_eu_request("llama-3.2-11b-vision"), {"country": "NO"})
	count(eu_multimodal_licence.violations) == 0 with input as request
}

test_success_family_without_the_clause if {
	count(eu_multimodal_licence.violations) == 0 with input as _eu_request("llama-3.2-11b-vision")
		with data.licences["llama3.2"].eu_multimodal_clause as null
}
