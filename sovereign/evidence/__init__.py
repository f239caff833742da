"""Evidence packs: what an auditor needs to check a region's decisions offline, in one signed archive.

`export_pack` gathers, for one region, the decision log segments and their signed heads, the signed policy
bundle of every revision a record names and of the one in force, the latest decision per subject (each
pointing at its record), the weights digests, the accreditations and their state, the compliance matrix
(HTML and Markdown) and a CycloneDX ML-BOM of what is deployed, and signs a manifest of every member's
digest with the audit key. `verify_pack` checks it with the public keys alone: the manifest's signature,
every member's digest, every log segment, each bundle's signature (and that every record's revision has
its bundle), and that each decision is the record it points at.
"""
