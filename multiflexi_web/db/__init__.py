"""Database plumbing: engine set-up, writer transactions, transient-error retry, LISTEN, raw SQL."""
