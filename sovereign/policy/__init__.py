"""The one policy decision: its input, the signed bundle, and the two engines that evaluate it.

Python validates and gathers the input and acts on the decision; every judgement is made in Rego.
"""
