"""Standalone daemons (scheduler, executor, eventor) sharing the portal's models."""
