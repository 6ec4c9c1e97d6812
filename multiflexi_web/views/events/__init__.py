"""Event source, rule and received-event pages."""
