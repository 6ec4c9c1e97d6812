"""Backups of an installation: a consistent snapshot of the database with the artifact files it
refers to (`multiflexi backup`), and putting one back (`multiflexi restore`).

snapshot.py takes and restores the database (SQLite's online backup API; pg_dump and
pg_restore on one exported snapshot for PostgreSQL), files.py copies the artifact files the
snapshot names, manifest.py describes a backup, archive.py puts the steps in order.
"""
