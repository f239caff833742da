# METADATA
# title: INVALID_INPUT
# description: >-
#   Fields every decision needs. Python validates requests before asking; this keeps a malformed request
#   that reaches the policy anyway (another client, a bug) from being judged on partial facts.
package sovereign.rules.invalid_input

import data.sovereign.lib

_required_strings := [
	["cluster.name", lib.cluster, "name"],
	["cluster.region", lib.cluster, "region"],
	["cluster.country", lib.cluster, "country"],
	["cluster.operator.name", lib.operator, "name"],
	["cluster.operator.country", lib.operator, "country"],
	["cluster.operator.kind", lib.operator, "kind"],
	["model", lib.request, "model"],
	["end_use", lib.request, "end_use"],
]

violations contains lib.item("INVALID_INPUT", message, lib.code_citation("INVALID_INPUT")) if {
	some [field, parent, key] in _required_strings
	not is_string(object.get(parent, key, null))
	message := concat("", ["input field ", field, " is missing or not a string"])
}

violations contains lib.item("INVALID_INPUT", message, lib.code_citation("INVALID_INPUT")) if {
	not lib.as_of
	message := concat("", [
		"input field as_of is missing or not a YYYY-MM-DD date (got ",
		lib.text(object.get(lib.request, "as_of", null)), "): no accreditation can be valid",
	])
}

# screening may be absent or null (no hits), but a screening result that cannot be read must not pass as clean.
violations contains lib.item("INVALID_INPUT", message, lib.code_citation("INVALID_INPUT")) if {
	screening := lib.request.screening
	screening != null
	not is_array(screening.hits)
	message := concat("", ["input field screening.hits must be a list of hits (got ", lib.text(screening), ")"])
}

# screening.performed may be absent (older callers), but a caller that says whether it screened must say it
# readably: an unreadable answer must not pass as "screened".
violations contains lib.item("INVALID_INPUT", message, lib.code_citation("INVALID_INPUT")) if {
	performed := lib.object_at(lib.request, "screening").performed
	not is_boolean(performed)
	message := concat("", ["input field screening.performed must be true or false (got ", lib.text(performed), ")"])
}

# screening.required (an enforcement point) may be absent, but not unreadable: it must not pass as "not
# required".
violations contains lib.item("INVALID_INPUT", message, lib.code_citation("INVALID_INPUT")) if {
	required := lib.object_at(lib.request, "screening").required
	not is_boolean(required)
	message := concat("", ["input field screening.required must be true or false (got ", lib.text(required), ")"])
}

# approval (the decision approves a new organisation) may be absent, but not unreadable: it must not pass
# as "not an approval".
violations contains lib.item("INVALID_INPUT", message, lib.code_citation("INVALID_INPUT")) if {
	approval := lib.request.approval
	not is_boolean(approval)
	message := concat("", ["input field approval must be true or false (got ", lib.text(approval), ")"])
}

# weights (the checkpoint a serving replica is about to load) may be absent, but facts that cannot be read
# must not let the checkpoint pass unchecked. stand_in_for null reads as absent.
violations contains lib.item("INVALID_INPUT", message, lib.code_citation("INVALID_INPUT")) if {
	weights := lib.request.weights
	not _is_weights(weights)
	message := concat("", [
		"input field weights must be {input_modalities: [string], parameters: integer >= 0, ",
		"stand_in_for: catalogue id (optional)} (got ", lib.text(weights), ")",
	])
}

# request.modalities (the content of a serving request) may be absent, but not unreadable.
violations contains lib.item("INVALID_INPUT", message, lib.code_citation("INVALID_INPUT")) if {
	modalities := lib.object_at(lib.request, "request").modalities
	not _is_strings(modalities)
	message := concat("", ["input field request.modalities must be a list of strings (got ", lib.text(modalities), ")"])
}

# The operator's optional licence facts: absent they are not facts, present they must be readable, or a
# principal place of business or a user count that cannot be read would pass as "outside the EU" or "few users".
violations contains lib.item("INVALID_INPUT", message, lib.code_citation("INVALID_INPUT")) if {
	seat := lib.operator.principal_place_of_business
	not _is_country(seat)
	message := concat("", [
		"input field cluster.operator.principal_place_of_business must be an ISO 3166-1 alpha-2 code (got ",
		lib.text(seat), ")",
	])
}

violations contains lib.item("INVALID_INPUT", message, lib.code_citation("INVALID_INPUT")) if {
	months := lib.operator.mau_by_month
	not _is_mau_by_month(months)
	message := concat("", [
		"input field cluster.operator.mau_by_month must be {\"YYYY-MM\": integer >= 0} (got ",
		lib.text(months), ")",
	])
}

violations contains lib.item("INVALID_INPUT", message, lib.code_citation("INVALID_INPUT")) if {
	users := lib.operator.monthly_active_users
	not _is_count(users)
	message := concat("", ["input field cluster.operator.monthly_active_users must be an integer >= 0 (got ", lib.text(users), ")"])
}

violations contains lib.item("INVALID_INPUT", message, lib.code_citation("INVALID_INPUT")) if {
	grant := lib.operator.llama_licence_grant
	not is_boolean(grant)
	message := concat("", ["input field cluster.operator.llama_licence_grant must be true or false (got ", lib.text(grant), ")"])
}

# Two ASCII capitals, checked a character at a time as lib.is_date is (regex.match costs the Wasm build
# a compile in each evaluation).
_is_country(value) if {
	is_string(value)
	count(value) == 2
	every char in [substring(value, 0, 1), substring(value, 1, 1)] {
		char in _capitals
	}
}

_capitals := {
	"A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M",
	"N", "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z",
}

_is_mau_by_month(months) if {
	is_object(months)
	every month, users in months {
		regex.match(`^[0-9]{4}-(0[1-9]|1[0-2])$`, month)
		_is_count(users)
	}
}

_is_weights(weights) if {
	_is_strings(weights.input_modalities)
	_is_count(weights.parameters)
	_is_optional_string(object.get(weights, "stand_in_for", null))
}

_is_strings(values) if {
	is_array(values)
	every value in values {
		is_string(value)
	}
}

_is_count(value) if {
	is_number(value)
	value >= 0
	floor(value) == value
}

_is_optional_string(value) if value == null

_is_optional_string(value) if is_string(value)
