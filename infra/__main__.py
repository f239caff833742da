"""Entry point for `pulumi up -s STACK` run from the project folder (the CLI's working directory)."""

from pathlib import Path

from infra.program import sovereign_program

sovereign_program(Path.cwd())
