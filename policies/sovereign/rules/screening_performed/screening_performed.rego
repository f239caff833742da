# METADATA
# title: SCREENING_NOT_PERFORMED, SCREENING_NOT_PERFORMED_NOTICE
# description: >-
#   Python screens the operator when a denied-party list is available to it, and says whether it did
#   (input.screening.performed). An organisation that could not be screened cannot be approved
#   (input.approval: this decision approves a new organisation): a violation. Any other decision made
#   without screening says that it does not cover denied-party screening: an obligation on its reader.
#   Without screening.performed (older callers) the rule is silent.
package sovereign.rules.screening_performed

import data.sovereign.lib

_not_performed if lib.object_at(lib.request, "screening").performed == false

_is_approval if lib.request.approval == true

_operator := lib.text(object.get(lib.operator, "name", null))

violations contains lib.item("SCREENING_NOT_PERFORMED", message, citation) if {
	_not_performed
	_is_approval
	message := concat("", [
		"operator <", _operator, "> was not screened against any denied-party list: an organisation that ",
		"cannot be screened cannot be approved",
	])
	citation := lib.code_citation("SCREENING_NOT_PERFORMED")
}

obligations contains lib.item("SCREENING_NOT_PERFORMED_NOTICE", message, citation) if {
	_not_performed
	not _is_approval
	message := concat("", [
		"operator <", _operator, "> was not screened against any denied-party list: this decision does not ",
		"cover denied-party screening; screen the operator before relying on it",
	])
	citation := lib.code_citation("SCREENING_NOT_PERFORMED_NOTICE")
}
