package sovereign.rules.ai_act_systemic_risk_test

import data.sovereign.rules.ai_act_systemic_risk
import data.sovereign.test.fixtures

_eu_request(model, as_of) := fixtures.patched(fixtures.eu_text_only, {"model": model, "as_of": as_of})

test_success_reported_for_405b_in_the_eu_from_2_august_2025 if {
	obligations := ai_act_systemic_risk.obligations with input as _eu_request("llama-3.1-405b-instruct", "2025-08-02")
	obligations == {{
		"code": "AI_ACT_SYSTEMIC_RISK",
		"message": concat("", [
			"model <llama-3.1-405b-instruct> was trained with 3.8e+25 FLOP (threshold 1e+25): the EU AI Act ",
			"presumes it a general-purpose AI model with systemic risk (Art. 51(2)), and cluster country <FR> is ",
			"in the EU. The duties of Arts. 53 and 55 fall on the model's provider, not on this deployer: the model ",
			"was placed on the market on 2024-07-23, before 2025-08-02, so its provider has until 2027-08-02 ",
			"(Art. 111(3)). They become this operator's only if it modifies the model with more than one third of ",
			"the original's training compute (Commission guidelines), making it the provider of the modified model",
		]),
		"citation": data.ai_act.systemic_risk.citation,
	}}
}

test_success_not_reported_before_chapter_v_applies if {
	every as_of in ["2024-08-01", "2025-06-01", "2025-08-01"] {
		count(ai_act_systemic_risk.obligations) == 0 with input as _eu_request("llama-3.1-405b-instruct", as_of)
	}
}

test_success_not_reported_without_a_valid_as_of if {
	count(ai_act_systemic_risk.obligations) == 0 with input as _eu_request("llama-3.1-405b-instruct", "soon")
}

test_success_reported_for_quantised_405b_by_hf_repo_id if {
	count(ai_act_systemic_risk.obligations) == 1 with input as _eu_request("meta-llama/Llama-3.1-405B-FP8", "2026-06-01")
}

test_success_reported_at_exactly_the_threshold if {
	count(ai_act_systemic_risk.obligations) == 1 with input as _eu_request("llama-3.1-405b", "2026-06-01")
		with data.catalogue.models["llama-3.1-405b"].training_compute.flop as 1e25
}

# A model placed on the market from 2 August 2025 has no transition; one without a date gets none assumed.
test_success_provider_timing_follows_the_placing_on_the_market if {
	late := ai_act_systemic_risk.obligations with input as _eu_request("llama-3.1-405b", "2026-06-01")
		with data.catalogue.models["llama-3.1-405b"].release_date as "2025-09-01"
	{o.message | some o in late; contains(o.message, "placed on the market on 2025-09-01, so its provider's duties apply from that day")} != set()
	undated := ai_act_systemic_risk.obligations with input as _eu_request("llama-3.1-405b", "2026-06-01")
		with data.catalogue.models["llama-3.1-405b"] as object.remove(data.catalogue.models["llama-3.1-405b"], ["release_date"])
	{o.message | some o in undated; contains(o.message, "no placing-on-market date is known, so no Art. 111(3) transition is assumed")} != set()
}

test_success_not_reported_outside_the_eu if {
	request := fixtures.patched(fixtures.us_defense, {"model": "llama-3.1-405b", "as_of": "2026-06-01"})
	count(ai_act_systemic_risk.obligations) == 0 with input as request
}

test_success_not_reported_without_published_flop if {
	every model in [
		"llama-3.1-70b-instruct", "llama-4-maverick-17b-128e-instruct", "llama-3.3-70b-instruct",
		"meta-llama-3-70b-instruct", "llama-2-70b-chat",
	] {
		count(ai_act_systemic_risk.obligations) == 0 with input as _eu_request(model, "2026-06-01")
	}
}
