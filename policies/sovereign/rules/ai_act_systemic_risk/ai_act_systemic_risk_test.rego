package sovereign.rules.ai_act_systemic_risk_test

import data.sovereign.rules.ai_act_systemic_risk
import data.sovereign.test.fixtures

_eu_request(model) := fixtures.patched(fixtures.eu_text_only, {"model": model})

test_success_reported_for_405b_in_the_eu if {
	obligations := ai_act_systemic_risk.obligations with input as _eu_request("llama-3.1-405b-instruct")
	obligations == {{
		"code": "AI_ACT_SYSTEMIC_RISK",
		"message": concat("", [
			"model <llama-3.1-405b-instruct> was trained with 3.8e+25 FLOP (threshold 1e+25) and cluster ",
			"country <FR> is in the EU: the EU AI Act presumes systemic risk (Arts. 51, 55 duties)",
		]),
		"citation": data.ai_act.systemic_risk.citation,
	}}
}

test_success_reported_for_quantised_405b_by_hf_repo_id if {
	count(ai_act_systemic_risk.obligations) == 1 with input as _eu_request("meta-llama/Llama-3.1-405B-FP8")
}

test_success_reported_at_exactly_the_threshold if {
	count(ai_act_systemic_risk.obligations) == 1 with input as _eu_request("llama-3.1-405b")
		with data.catalogue.models["llama-3.1-405b"].training_compute.flop as 1e25
}

test_success_not_reported_outside_the_eu if {
	request := fixtures.patched(fixtures.us_defense, {"model": "llama-3.1-405b"})
	count(ai_act_systemic_risk.obligations) == 0 with input as request
}

test_success_not_reported_without_published_flop if {
	every model in ["llama-3.1-70b-instruct", "llama-4-maverick-17b-128e-instruct", "llama-3.3-70b-instruct"] {
		count(ai_act_systemic_risk.obligations) == 0 with input as _eu_request(model)
	}
}
