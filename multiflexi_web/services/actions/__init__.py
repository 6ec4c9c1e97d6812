"""Post-job actions: the outbox written at a job's finish, the dispatcher, configuration."""
