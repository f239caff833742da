"""Tiny local Llama checkpoints for tests and the demo, built offline in the layout of real ones."""
