"""The sovereign exporter: DCGM-compatible GPU metrics, GPU allocation accounting and policy decisions.

Run it with `sovereign exporter` or `python -m sovereign.exporter` (the latter needs only
prometheus-client and nvidia-ml-py for the GPU part, so it runs on a bare GPU node).
"""
