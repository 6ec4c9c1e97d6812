"""Labels on every container the platform starts: how leftovers are found after a crash."""

LABEL_JOB = "multiflexi.job"
LABEL_WORKER = "multiflexi.worker"
