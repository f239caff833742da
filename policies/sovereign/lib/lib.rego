# METADATA
# title: Decision input and policy data, read defensively
# description: >-
#   Every accessor is total: a missing or mistyped field reads as null (or {} / []), never as undefined,
#   so a rule that must deny on a missing field still fires. Time comes only from input.as_of.
package sovereign.lib

# The decision input as an object even when the caller sent something else: garbage must deny.
default request := {}

request := input if is_object(input)

as_object(value) := value if is_object(value)

else := {}

object_at(doc, key) := as_object(object.get(doc, key, null))

default array_at(_, _) := []

array_at(doc, key) := doc[key] if is_array(doc[key])

# The value shown in a message: strings as they are, anything else (null, numbers) as JSON.
text(value) := value if is_string(value)

else := json.marshal(value)

# Arrays keep their order; sort a set first (OPA iterates sets sorted, Wasm does not).
texts(values) := concat(", ", [text(v) | some v in values])

# "YYYY-MM-DD" in ASCII digits. Checked a character at a time, not with regex.match: the Wasm build
# compiles a pattern again in each evaluation, a tenth of an in-process decision (benchmarks/RESULTS.md).
is_date(value) if {
	is_string(value)
	count(value) == 10
	substring(value, 4, 1) == "-"
	substring(value, 7, 1) == "-"
	every i in [0, 1, 2, 3, 5, 6, 8, 9] {
		substring(value, i, 1) in _digits
	}
}

_digits := {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

cluster := object_at(request, "cluster")

operator := object_at(cluster, "operator")

accreditations := array_at(cluster, "accreditations")

region_name := object.get(cluster, "region", null)

region := data.regions[region_name] if is_string(region_name)

cluster_country := object.get(cluster, "country", null)

# weights_country defaults to the cluster's country.
weights_country := cluster.weights_country if is_string(cluster.weights_country)

else := cluster_country

operator_country := object.get(operator, "country", null)

operator_kind := object.get(operator, "kind", null)

# Absent: the operator's country (a company run from where it is incorporated).
principal_place_of_business := operator.principal_place_of_business if is_string(operator.principal_place_of_business)

else := operator_country

# Where the licensee is, as the Llama EU paragraph counts it: an individual's domicile (operator.country);
# every other kind is read as a company, whose principal place of business decides.
licensee_seat := operator_country if operator_kind == "individual"

else := principal_place_of_business

end_use := object.get(request, "end_use", null)

# "YYYY-MM-DD"; undefined when missing or malformed, so nothing that needs a date can be valid.
as_of := request.as_of if is_date(request.as_of)

requested_model := object.get(request, "model", null)

_model_key := lower(requested_model) if is_string(requested_model)

# A catalogue id or a Hugging Face repo id, in any case.
model_id := _model_key if data.catalogue.models[_model_key]

else := data.catalogue.aliases[_model_key]

model := data.catalogue.models[model_id]

licence := data.licences[model.licence]

# The content of one serving request (input.request.modalities, gathered by the serving guard); [] without one.
request_modalities := array_at(object_at(request, "request"), "modalities")

is_multimodal if {
	some modality in array.concat(model.modalities.input, model.modalities.output)
	modality != "text"
}

# Whether the operator matches one of the rules: same kind, and in each listed set of countries.
operator_matches(rules) if {
	some rule in rules
	rule.kind == object.get(operator, "kind", null)
	_allows(rule, "countries", operator_country)
	_allows(rule, "sponsor_countries", object.get(operator, "sponsor_country", null))
}

_allows(rule, constraint, _) if not rule[constraint]

_allows(rule, constraint, country) if country in rule[constraint]

# "government_agency in US; government_contractor sponsored by US"
describe_rules(rules) := concat("; ", [_describe_rule(rule) | some rule in rules])

_describe_rule(rule) := concat("", [
	rule.kind,
	_constraint_text(rule, "countries", " in "),
	_constraint_text(rule, "sponsor_countries", " sponsored by "),
])

_constraint_text(rule, constraint, prefix) := concat("", [prefix, texts(rule[constraint])]) if rule[constraint]

else := ""

describe_operator := concat("", [
	"operator <", text(object.get(operator, "name", null)),
	"> (kind ", text(object.get(operator, "kind", null)),
	", country ", text(operator_country),
	_ppb_text, _sponsor_text, ")",
])

# Shown only where it is a fact the policy reads: a company's seat that is not its country.
_ppb_text := concat("", [", principal place of business ", principal_place_of_business]) if {
	operator_kind != "individual"
	principal_place_of_business != operator_country
}

else := ""

_sponsor_text := concat("", [", sponsor ", operator.sponsor_country]) if is_string(operator.sponsor_country)

else := ""

# Meta's national-security carve-out (licences.yaml): the memberships in force on as_of, none without one.
carve_out_in_force := [member |
	some member in data.national_security_carve_out.members
	member.since <= as_of
]

# The operator rules the given memberships make: each kind, with every constrained country set to theirs.
carve_out_rules(members) := [rule |
	countries := sort({country | some member in members; some country in member.countries})
	some eligible in data.national_security_carve_out.eligible_operators
	rule := object.union({"kind": eligible.kind}, {constraint: countries | some constraint in eligible.member_constraints})
]

carve_out_covers(members) if operator_matches(carve_out_rules(members))

# A citation from the codes table; the fallback keeps a violation (hence a deny) even without data.
code_citation(code) := citation if citation := data.codes[code].citation

else := "policy data missing from the bundle — https://www.openpolicyagent.org/docs/management-bundles"

# The model's catalogue source (its model card, first of its citations) for a violation about the variant
# itself; the code's general citation when the entry has none.
model_citation(code, what) := concat("", ["Catalogue source of ", model_id, ", ", what, " — ", url]) if {
	url := model.citations[0]
	is_string(url)
} else := code_citation(code)

item(code, message, citation) := {"code": code, "message": message, "citation": citation}

# Items sorted by code, then message, then citation: the same input always gives the same array.
sorted(items) := [item(t[0], t[1], t[2]) | some t in sort([[i.code, i.message, i.citation] | some i in items])]
