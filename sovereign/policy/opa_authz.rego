# METADATA
# description: |
#   Who may use an OPA server's API: signed into every policy bundle as system.authz, and enforced
#   by OPA itself when started with --authentication=token --authorization=basic. The token is the
#   server's own $SOVEREIGN_OPA_TOKEN, kept out of the bundle so the bundle can be shared while the
#   token stays secret (see sovereign/policy/opa_token.py).
package system.authz

default allow := false

# Health carries no policy and no data: readiness probes reach it without the token.
allow if {
	input.method == "GET"
	input.path == ["health"]
}

# Any other request must bear the server's token; a server started without one (or with a short one)
# answers nobody.
allow if {
	token := opa.runtime().env.SOVEREIGN_OPA_TOKEN
	count(token) >= 32
	input.identity == token
}
