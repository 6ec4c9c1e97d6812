"""RunTemplates: creation, configuration values, credentials, clone and delete."""
