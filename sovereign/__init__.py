"""sovereign: export-control and sovereign-deployment orchestration for Llama on Ray Serve."""

__version__ = "0.1.0"
