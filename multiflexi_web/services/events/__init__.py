"""Event processing: sources that receive events, rules that match them, jobs they create."""
