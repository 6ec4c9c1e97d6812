"""The executor's run machinery (job slots, run, finish, units of work) for daemons/executor.py."""
