# METADATA
# title: Requests shared by the tests
# description: One request per shipped region that the policy allows; tests patch them with object.union.
package sovereign.test.fixtures

us_defense := {
	"cluster": {
		"name": "pentagon-1",
		"region": "us-defense",
		"country": "US",
		"operator": {"name": "Defense Digital Service", "country": "US", "kind": "government_agency"},
		"accreditations": [{"scheme": "dod-il5", "expires": "2026-12-31", "reference": "DISA-PA-1"}],
		"gpu_quota": 16,
		"gpus_in_use": 4,
	},
	"model": "llama-3.2-11b-vision-instruct",
	"end_use": "defense",
	"gpus": 8,
	"as_of": "2025-06-01",
	"screening": {"hits": []},
}

five_eyes := {
	"cluster": {
		"name": "whitehall-1",
		"region": "five-eyes",
		"country": "GB",
		"operator": {
			"name": "Albion Analytics Ltd",
			"country": "GB",
			"kind": "government_contractor",
			"sponsor_country": "GB",
		},
		"accreditations": [{"scheme": "uk-official", "expires": "2025-12-31"}],
	},
	"model": "meta-llama/Llama-4-Scout-17B-16E-Instruct",
	"end_use": "intelligence",
	"as_of": "2025-06-01",
}

eu_text_only := {
	"cluster": {
		"name": "paris-1",
		"region": "eu-text-only",
		"country": "FR",
		"operator": {"name": "Exemple SAS", "country": "FR", "kind": "company"},
		"accreditations": [],
	},
	"model": "llama-3.1-8b-instruct",
	"end_use": "commercial",
	"as_of": "2025-06-01",
}

# object.union merges nested objects, so a patch names only what it changes.
patched(request, patch) := object.union(request, patch)

operator(request, patch) := patched(request, {"cluster": {"operator": patch}})

codes(items) := {item.code | some item in items}
