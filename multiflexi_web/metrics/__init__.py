"""Prometheus metrics: database figures at scrape time, daemon instruments, a small server."""
