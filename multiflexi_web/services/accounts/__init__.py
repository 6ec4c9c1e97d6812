"""Companies, users, memberships and per-company access."""
