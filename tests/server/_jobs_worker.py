"""A job worker process for the SIGKILL test: ``JOBS_DB`` names the SQLite file,
``JOBS_VISIBILITY`` the lease length. Attempt 1 of ``export`` touches its marker file and hangs
(the test kills the process then); a later attempt returns at once."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from interlock import Jobs
from interlock.server import Job

jobs = Jobs(store=os.environ["JOBS_DB"])


@jobs.task("export")
async def export(job: Job) -> dict[str, Any]:
    if job.attempt == 1:
        await job.progress(0.1, "started")
        Path(job.params["marker"]).touch()
        await asyncio.sleep(3600)
    return {"attempt": job.attempt, "pid": os.getpid()}


async def main() -> None:
    async with jobs:
        await jobs.worker(visibility=float(os.environ["JOBS_VISIBILITY"])).run()


if __name__ == "__main__":
    asyncio.run(main())
