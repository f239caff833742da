# METADATA
# title: AI_ACT_SYSTEMIC_RISK (obligation)
# description: >-
#   EU AI Act: a general-purpose AI model whose published training compute reaches the threshold is presumed
#   to carry systemic risk (Art. 51(2)). Chapter V applies from 2 August 2025 (Art. 113(b)): before that
#   as_of nothing is reported. From then a cluster in the EU serving such a model gets an advisory obligation
#   worded for its role: the duties (Arts. 53, 55) are the provider's, with the Art. 111(3) transition for
#   models placed on the market before 2 August 2025, and become the deployer's only when its modification
#   makes it the provider of the modified model. Dates and thresholds are data (ai_act.yaml).
package sovereign.rules.ai_act_systemic_risk

import data.sovereign.lib

_risk := data.ai_act.systemic_risk

_release := object.get(lib.model, "release_date", null)

obligations contains lib.item("AI_ACT_SYSTEMIC_RISK", message, _risk.citation) if {
	flop := lib.model.training_compute.flop
	flop >= _risk.threshold_flop
	lib.cluster_country in _risk.cluster_countries
	lib.as_of >= _risk.applies_from
	message := concat("", [
		"model <", lib.model_id, "> was trained with ", lib.text(flop), " FLOP (threshold ",
		lib.text(_risk.threshold_flop), "): the EU AI Act presumes it a general-purpose AI model with systemic ",
		"risk (Art. 51(2)), and cluster country <", lib.cluster_country, "> is in the EU. The duties of Arts. 53 ",
		"and 55 fall on the model's provider, not on this deployer: ", _provider_timing, ". They become this ",
		"operator's only if it modifies the model with more than ", _risk.modification.share_of_original_compute,
		" of the original's training compute (Commission guidelines), making it the provider of the modified model",
	])
}

_provider_timing := concat("", [
	"the model was placed on the market on ", _release, ", before ", _risk.transition.placed_before,
	", so its provider has until ", _risk.transition.comply_by, " (Art. 111(3))",
]) if {
	is_string(_release)
	_release < _risk.transition.placed_before
} else := concat("", ["the model was placed on the market on ", _release, ", so its provider's duties apply from that day"]) if {
	is_string(_release)
} else := "no placing-on-market date is known, so no Art. 111(3) transition is assumed"
