"""Native executor module: a subprocess in its own process group (being written)."""

from __future__ import annotations

import shutil

from multiflexi_web.executors.base import AppInfo, JobIO, JobSpec, RunResult


class NativeExecutor:
    name = "native"
    description = "Runs the application as a local subprocess in its own process group"

    def unusable_reason(self, app: AppInfo) -> str | None:
        if not app.executable:
            return "the application has no executable"
        return None

    def run(self, spec: JobSpec, io: JobIO) -> RunResult:
        raise NotImplementedError(shutil.which(spec.argv[0]))
