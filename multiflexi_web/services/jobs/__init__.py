"""Jobs: creation, every status change, retries, environment, command line, output and artifacts."""
