package sovereign.rules.eu_multimodal_licence_test

import data.sovereign.rules.eu_multimodal_licence
import data.sovereign.test.fixtures

_eu_request(model) := fixtures.patched(fixtures.eu_text_only, {"model": model})

# A US government contractor with a Vision model on a US cluster: only where the licensee is decides.
_us_vision(operator) := fixtures.operator(fixtures.patched(fixtures.us_defense, {"end_use": "research"}), object.union(
	{"kind": "government_contractor", "sponsor_country": "US"},
	operator,
))

_clause_text := concat("", [
	"whose acceptable use policy withholds its multimodal models from an individual domiciled in, or a ",
	"company with a principal place of business in, the EU; ",
])

test_fail_llama_3_2_vision_for_eu_operator if {
	violations := eu_multimodal_licence.violations with input as _eu_request("llama-3.2-90b-vision")
	violations == {{
		"code": "EU_MULTIMODAL_LICENCE",
		"message": concat("", [
			"model <llama-3.2-90b-vision> is multimodal (input text, image) under licence family <llama3.2>, ",
			_clause_text, "operator <Exemple SAS> (kind company, country FR) is read as a company with its ",
			"principal place of business in <FR>",
		]),
		"citation": data.licences["llama3.2"].eu_multimodal_clause.citation,
	}}
}

test_fail_llama_4_for_eu_operator if {
	violations := eu_multimodal_licence.violations with input as _eu_request("meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8")
	{v.citation | some v in violations} == {data.licences.llama4.eu_multimodal_clause.citation}
}

test_fail_llama_guard_vision_for_eu_operator if {
	count(eu_multimodal_licence.violations) == 1 with input as _eu_request("llama-guard-3-11b-vision")
}

test_fail_operator_country_decides_not_cluster_country if {
	request := fixtures.operator(fixtures.us_defense, {"country": "IE"})
	count(eu_multimodal_licence.violations) == 1 with input as request
}

# Incorporated in the US, run from Munich: the principal place of business decides, not incorporation.
test_fail_us_company_with_principal_place_of_business_in_the_eu if {
	request := _us_vision({"country": "US", "principal_place_of_business": "DE"})
	{v.message | some v in eu_multimodal_licence.violations with input as request} == {concat("", [
		"model <llama-3.2-11b-vision-instruct> is multimodal (input text, image) under licence family <llama3.2>, ",
		_clause_text, "operator <Defense Digital Service> (kind government_contractor, country US, principal ",
		"place of business DE, sponsor US) is read as a company with its principal place of business in <DE>",
	])}
}

test_success_eu_company_with_principal_place_of_business_outside_the_eu if {
	request := _us_vision({"country": "DE", "principal_place_of_business": "US"})
	count(eu_multimodal_licence.violations) == 0 with input as request
}

# Every kind but individual is read as a company (reading in licences.yaml).
test_fail_every_organisation_kind_by_its_principal_place_of_business if {
	every kind in ["company", "government_agency", "government_contractor", "research_institution"] {
		request := fixtures.operator(fixtures.us_defense, {"kind": kind, "country": "US", "principal_place_of_business": "FR"})
		count(eu_multimodal_licence.violations) == 1 with input as request
	}
}

# An individual is where they are domiciled: a principal place of business does not move them.
test_fail_individual_domiciled_in_the_eu if {
	request := fixtures.operator(fixtures.us_defense, {"kind": "individual", "country": "IT", "principal_place_of_business": "US"})
	{v.message | some v in eu_multimodal_licence.violations with input as request} == {concat("", [
		"model <llama-3.2-11b-vision-instruct> is multimodal (input text, image) under licence family <llama3.2>, ",
		_clause_text, "operator <Defense Digital Service> (kind individual, country IT) is an individual ",
		"domiciled in <IT>",
	])}
}

test_success_individual_domiciled_outside_the_eu if {
	request := fixtures.operator(fixtures.us_defense, {"kind": "individual", "country": "US", "principal_place_of_business": "DE"})
	count(eu_multimodal_licence.violations) == 0 with input as request
}

test_success_text_only_models_for_eu_operator if {
	every model in [
		"llama-3.3-70b-instruct", "llama-3.2-1b-instruct-spinquant_int4_eo8", "llama-guard-3-1b",
		"meta-llama/Llama-2-7b-chat-hf", "meta-llama/Meta-Llama-3-8B-Instruct",
	] {
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

test_success_principal_place_of_business_equal_to_country_changes_nothing if {
	plain := eu_multimodal_licence.violations with input as _eu_request("llama-3.2-90b-vision")
	same := eu_multimodal_licence.violations with input as fixtures.operator(_eu_request("llama-3.2-90b-vision"), {"principal_place_of_business": "FR"})
	plain == same
}
