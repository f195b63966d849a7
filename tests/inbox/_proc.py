"""Child processes for the SIGKILL tests: ``ingress`` serves the inbox with uvicorn, ``worker``
runs workers whose handler logs each start and stops forever on the first attempt."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import interlock

SECRET = "test-secret"


def ingress(db: str, port: int) -> None:
    import uvicorn

    inbox = interlock.Inbox(store=f"sqlite:///{db}")
    inbox.source("github", interlock.signatures.GitHub(SECRET))
    uvicorn.run(inbox.asgi(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def worker(db: str, log: str, visibility: float) -> None:
    inbox = interlock.Inbox(store=f"sqlite:///{db}", visibility=visibility)
    inbox.source("github", interlock.signatures.GitHub(SECRET))  # the same declaration as ingress

    @inbox.handler("github", "*")
    async def handle(event: interlock.Event) -> None:
        with open(log, "a") as f:
            f.write(f"start {event.id} {event.attempt}\n")
        if event.attempt == 1:
            await asyncio.sleep(3600)  # killed here, mid-handler
        with open(log, "a") as f:
            f.write(f"done {event.id} {event.attempt}\n")

    async def main() -> None:
        print("ready", flush=True)
        await inbox.run_workers(concurrency=2)

    asyncio.run(main())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["ingress", "worker"])
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", default=os.devnull)
    parser.add_argument("--visibility", type=float, default=1.0)
    args = parser.parse_args()
    if args.mode == "ingress":
        ingress(args.db, args.port)
    else:
        worker(args.db, args.log, args.visibility)
    sys.exit(0)
