"""Chaos suite: real daemons on a private PostgreSQL, faults applied, executions counted."""
