"""Database plumbing: engine set-up per dialect, writer transactions, hot-path statements."""
