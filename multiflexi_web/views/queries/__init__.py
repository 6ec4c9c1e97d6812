"""Read models of the single-module portal views, by area."""
