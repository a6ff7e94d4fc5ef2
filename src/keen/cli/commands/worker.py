"""`keen worker`: run the agent runs of distributed mode (procrastinate jobs on PostgreSQL)
until SIGTERM or Ctrl-C, then hand the runs still going back to the queue and stop."""

from __future__ import annotations

import asyncio
import logging

from keen.cli.common import EXIT_OK, guarded, settings_or_fail, stderr_console
from keen.errors import ConfigError


def worker_command(*, concurrency: int, queues: list[str] | None) -> int:
    def body() -> int:
        from keen.runner.queue import run_worker
        from keen.runner.run_mode import check_run_mode

        settings = settings_or_fail()
        if settings.keen_run_mode != "distributed":
            raise ConfigError("keen worker runs distributed runs: set KEEN_RUN_MODE=distributed")
        check_run_mode(settings)  # PostgreSQL and procrastinate, or a clear error before anything starts
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
        stderr_console().print(f"keen worker: concurrency {concurrency}, waiting for runs")
        asyncio.run(run_worker(settings, concurrency=concurrency, queues=queues))
        stderr_console().print("keen worker stopped")
        return EXIT_OK

    return guarded(body)
