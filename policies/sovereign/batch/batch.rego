# METADATA
# title: Many decisions in one evaluation
# description: >-
#   For input {"items": [request, ...]}: the decision for each request, in order. The same rules, evaluated
#   once per item with that item as input.
# entrypoint: true
package sovereign.batch

import data.sovereign.decision

default results := []

results := [result |
	some item in input.items
	result := decision.result with input as item
] if {
	is_array(input.items)
}
