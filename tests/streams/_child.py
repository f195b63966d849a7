"""The subscriber killed by test_sigkill: commits a testbed's SSE stream into an inbox."""

from __future__ import annotations

import argparse
import asyncio

import interlock


async def main(url: str, db: str) -> None:
    inbox = interlock.Inbox(store=f"sqlite:///{db}")
    policy = interlock.StreamPolicy(
        backoff=interlock.Backoff(base=0.01, multiplier=2.0, cap=0.05), stall_timeout=2.0, reconcile_after=None
    )
    async with interlock.Client(url) as client:
        sub = inbox.subscribe("crm", interlock.EventStream.sse(client, "/events", policy=policy))
        print("ready", flush=True)
        await sub.run()  # until killed


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.db))
