"""`sovereign report`: chargeback, allocation and use, compliance and alerts over a window, read from
Prometheus and written as one self-contained HTML page with its plots inline as SVG."""
