"""Executor modules: one Protocol (base.py), one module per engine, an explicit registry."""
