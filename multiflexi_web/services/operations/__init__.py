"""Operator controls: pausing scopes and draining executors."""
