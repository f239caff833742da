# METADATA
# title: AI_ACT_SYSTEMIC_RISK (obligation)
# description: >-
#   EU AI Act Art. 51(2): a model whose published training compute reaches the threshold (ai_act.yaml) is
#   presumed to carry systemic risk; a cluster in the EU serving it must meet the GPAI systemic-risk duties.
package sovereign.rules.ai_act_systemic_risk

import data.sovereign.lib

obligations contains lib.item("AI_ACT_SYSTEMIC_RISK", message, systemic_risk.citation) if {
	systemic_risk := data.ai_act.systemic_risk
	flop := lib.model.training_compute.flop
	flop >= systemic_risk.threshold_flop
	lib.cluster_country in systemic_risk.cluster_countries
	message := concat("", [
		"model <", lib.model_id, "> was trained with ", lib.text(flop), " FLOP (threshold ",
		lib.text(systemic_risk.threshold_flop), ") and cluster country <", lib.cluster_country,
		"> is in the EU: the EU AI Act presumes systemic risk (Arts. 51, 55 duties)",
	])
}
