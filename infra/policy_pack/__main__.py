"""The policy pack: serving starts when the PolicyPack is constructed (the CLI runs this file)."""

from pulumi_policy import PolicyPack

from infra.preview_policy import POLICIES

PolicyPack(name="sovereign", policies=POLICIES)
