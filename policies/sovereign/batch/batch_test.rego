package sovereign.batch_test

import data.sovereign.batch
import data.sovereign.decision
import data.sovereign.test.fixtures

test_success_one_result_per_item_in_order if {
	items := [
		fixtures.us_defense,
		fixtures.patched(fixtures.eu_text_only, {"model": "llama-3.2-90b-vision-instruct"}),
		"garbage",
		fixtures.eu_text_only,
	]
	results := batch.results with input as {"items": items}
	[r.allow | some r in results] == [true, false, false, true]
	every i, item in items {
		results[i] == decision.result with input as item
	}
}

test_success_empty_batch if {
	batch.results == [] with input as {"items": []}
}

test_fail_batch_without_items_list if {
	every garbage in [{}, {"items": "x"}, "x", null] {
		batch.results == [] with input as garbage
	}
}
