"""Housekeeping: retention of jobs, output and artifacts, orphaned files, stale work dirs."""
