# METADATA
# title: The sovereign decision
# description: >-
#   For one (cluster, model, end use) request: allow, every violation and every obligation, each with its
#   code, message and citation, sorted. Deny by default: allow only when no rule found a violation.
#   Always defined, whatever the input.
# entrypoint: true
package sovereign.decision

import data.sovereign.lib
import data.sovereign.rules.accreditation
import data.sovereign.rules.ai_act_systemic_risk
import data.sovereign.rules.built_with_llama
import data.sovereign.rules.carve_out_unconfirmed
import data.sovereign.rules.data_residency
import data.sovereign.rules.denied_party
import data.sovereign.rules.embargo
import data.sovereign.rules.end_use
import data.sovereign.rules.eu_multimodal_licence
import data.sovereign.rules.gpu_quota
import data.sovereign.rules.invalid_input
import data.sovereign.rules.mau_licence
import data.sovereign.rules.operator_eligibility
import data.sovereign.rules.region_modality
import data.sovereign.rules.request_modality
import data.sovereign.rules.screening_performed
import data.sovereign.rules.tenant_binding
import data.sovereign.rules.unknown_model
import data.sovereign.rules.unknown_region
import data.sovereign.rules.weights_match
import data.sovereign.rules.weights_signature
import data.sovereign.rules.workload

violations := union({
	unknown_model.violations,
	unknown_region.violations,
	invalid_input.violations,
	eu_multimodal_licence.violations,
	region_modality.violations,
	end_use.violations,
	operator_eligibility.violations,
	embargo.violations,
	denied_party.violations,
	screening_performed.violations,
	accreditation.violations,
	data_residency.violations,
	mau_licence.violations,
	gpu_quota.violations,
	tenant_binding.violations,
	request_modality.violations,
	weights_match.violations,
	weights_signature.violations,
	workload.violations,
})

obligations := union({
	ai_act_systemic_risk.obligations,
	built_with_llama.obligations,
	carve_out_unconfirmed.obligations,
	screening_performed.obligations,
	weights_signature.obligations,
})

result := {
	"allow": count(violations) == 0,
	"violations": lib.sorted(violations),
	"obligations": lib.sorted(obligations),
}
