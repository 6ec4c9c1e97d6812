"""Post-job actions: plug-ins run by the dispatcher after a job finishes."""
