"""Secrets at rest and the rules that keep one tenant away from the platform and from others."""
