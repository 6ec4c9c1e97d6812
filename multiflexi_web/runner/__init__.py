"""The executor's run machinery (run, finish, units of work) that daemons/executor.py drives."""
