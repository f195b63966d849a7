"""Child process for the SIGKILL test: one poll of a write-back sync against a testbed in
another process. Killed mid-run by the test, then started again to finish."""

from __future__ import annotations

import argparse
import asyncio
import sys

import interlock


async def main(url: str, store: str) -> None:
    async with interlock.Client(url) as client:
        sync = interlock.Sync(
            "crash",
            source=interlock.SyncSource(client, "/customers", page_size=50),
            destination=interlock.WriteBack(client, "/mirror/{id}"),
            store=store,
            window=200,
            checkpoint_every=0.01,
        )
        async with sync:
            print("polling", flush=True)
            report = await sync.run_once()
            print(f"done {report.read} {report.applied} {report.skipped}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--store", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.store))
    sys.exit(0)
