"""Labels on every container, Pod and container group the platform starts: how leftovers and a
retry's previous attempt are found, and whose they are (models/installation.py)."""

LABEL_JOB = "multiflexi.job"
LABEL_WORKER = "multiflexi.worker"
LABEL_INSTALLATION = "multiflexi.installation"
