"""Prometheus rules, their promtool tests and the Grafana dashboards (see METRICS.md)."""
