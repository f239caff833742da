# METADATA
# title: SCREENING_UNAVAILABLE, SCREENING_NOT_PERFORMED, SCREENING_NOT_PERFORMED_NOTICE
# description: >-
#   Python screens the operator when a current denied-party list is available to it, and says whether it
#   did (input.screening.performed). At an enforcement point screening is required
#   (input.screening.required): without a current list the decision cannot be made (SCREENING_UNAVAILABLE,
#   which callers treat as undecided, as an unreachable engine), and the message carries Python's account
#   of why there is no list and how to get one (input.screening.problem). Elsewhere, an organisation that
#   could not be screened cannot be approved (input.approval): a violation; any other decision made without
#   screening says that it does not cover denied-party screening: an obligation on its reader.
#   Without screening.performed (older callers) the rule is silent.
package sovereign.rules.screening_performed

import data.sovereign.lib

_screening := lib.object_at(lib.request, "screening")

_not_performed if _screening.performed == false

_required if _screening.required == true

_is_approval if lib.request.approval == true

_operator := lib.text(object.get(lib.operator, "name", null))

_problem := lib.text(object.get(_screening, "problem", null))

violations contains lib.item("SCREENING_UNAVAILABLE", message, citation) if {
	_not_performed
	_required
	message := concat("", [
		"operator <", _operator, "> cannot be screened: no current denied-party list (", _problem, "); ",
		"screening is required here, so nothing is decided until a current list is configured",
	])
	citation := lib.code_citation("SCREENING_UNAVAILABLE")
}

violations contains lib.item("SCREENING_NOT_PERFORMED", message, citation) if {
	_not_performed
	not _required
	_is_approval
	message := concat("", [
		"operator <", _operator, "> was not screened against any denied-party list: an organisation that ",
		"cannot be screened cannot be approved",
	])
	citation := lib.code_citation("SCREENING_NOT_PERFORMED")
}

obligations contains lib.item("SCREENING_NOT_PERFORMED_NOTICE", message, citation) if {
	_not_performed
	not _required
	not _is_approval
	message := concat("", [
		"operator <", _operator, "> was not screened against any denied-party list: this decision does not ",
		"cover denied-party screening; screen the operator before relying on it",
	])
	citation := lib.code_citation("SCREENING_NOT_PERFORMED_NOTICE")
}
