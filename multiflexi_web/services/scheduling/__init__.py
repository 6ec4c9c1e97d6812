"""Scheduling: run-time math, the scheduler's tick and the slot jobs it writes."""
