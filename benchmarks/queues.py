"""Queue benchmark: end-to-end events/s (published -> handled -> acked) and p99 latency per
backend, with 1 and 2 worker processes, against the broker clients used by hand.

Contenders, each with ``--workers`` consumer processes (default: 1 and 2) started and ready
before the clock starts:

  interlock-sqlite     Inbox workers on a SQLite file queue
  interlock-postgres   Inbox workers on this machine's PostgreSQL (fresh schema)
  interlock-rabbitmq   Inbox workers on RabbitMQ (quorum queue, confirms, SQLite companion), the
                       default ``basic.get`` per delivery
  interlock-rabbitmq-prefetch   the same with ``?prefetch=128`` (``basic.consume``, 128 unacked)
  interlock-nats       Inbox workers on NATS JetStream (work-queue stream, SQLite companion)
  aio-pika             baseline: what a competent engineer writes by hand on RabbitMQ: a durable
                       quorum queue, publisher confirms, ``basic.consume`` with prefetch 64 and a
                       manual ack per message (no dedupe, no DLQ, no error history, no ordering)
  nats-py              baseline: JetStream by hand: ``js.publish`` (awaits the PubAck), a durable
                       pull consumer fetching 64 at a time, ``ack()`` per message (the same
                       omissions)

The publisher (this process) puts ``--events`` events with 64 in flight; every consumer runs 64
handlers at once (Interlock: ``Inbox.run_workers(concurrency=64)``; by hand: prefetch/batch 64).
A handler records ``now - published at`` (wall clock, from the body): the latency. The run ends
when every event was handled and acknowledged (Interlock: the queue's stats show nothing
pending; by hand: the consumers count after their ack). events/s = events / (end - first
publish). Contenders of a backend alternate over ``--rounds`` rounds; medians (min-max).
Each run uses a fresh queue / stream / schema / file, deleted afterwards.

    python benchmarks/queues.py                               # everything, 20,000 events
    python benchmarks/queues.py --events 5000 --rounds 1 --backends rabbitmq nats
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

import _common

PG_DSN = os.environ.get("INTERLOCK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("INTERLOCK_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
NATS_URL = os.environ.get("INTERLOCK_TEST_NATS_URL", "nats://127.0.0.1:4222")
BACKENDS = ["sqlite", "postgres", "rabbitmq", "nats"]
BASELINE = {"rabbitmq": "aio-pika", "nats": "nats-py"}
IN_FLIGHT = 64


# --------------------------------------------------------------------------------------------
# consumers (each in a child process: ``queues.py consume KIND STORE NAME``)


class Progress:
    """What a consumer prints: ``ready``, ``n COUNT`` now and then, ``lat [..]`` at the end."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self._printed = 0

    def handled(self, sent: float) -> None:
        self.latencies.append(time.time() - sent)

    async def report_forever(self) -> None:
        """The count, whenever it changed, every 10 ms (the parent sums the consumers')."""
        while True:
            await asyncio.sleep(0.01)
            if len(self.latencies) != self._printed:
                self._printed = len(self.latencies)
                print(f"n {self._printed}", flush=True)

    def finish(self) -> None:
        print(f"n {len(self.latencies)}", flush=True)
        print("lat " + json.dumps(self.latencies), flush=True)


async def consume_interlock(store: str, name: str) -> None:
    import logging

    from interlock import Inbox

    logging.basicConfig(level=logging.WARNING, format="consumer: %(levelname)s %(name)s %(message)s")
    import faulthandler

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the parent asks for stacks of a stuck run
    from interlock.stores import open_queue

    broker = store.startswith(("amqp", "nats"))
    queue = open_queue(store, table=name if broker else None, poll_interval=0.02)
    inbox = Inbox(store=queue, retention=None)
    inbox.internal_source("bench")
    progress = Progress()

    @inbox.handler("bench")
    async def handle(event: Any) -> None:
        progress.handled(float(event.body))

    await inbox.open()
    await run_until_term(inbox.run_workers(concurrency=IN_FLIGHT), progress)
    await inbox.aclose()


async def consume_aio_pika(name: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=IN_FLIGHT)
    queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    progress = Progress()

    async def on_message(message: Any) -> None:
        progress.handled(float(message.body))
        await message.ack()

    await queue.consume(on_message)
    await run_until_term(asyncio.Event().wait(), progress)
    await connection.close()


async def consume_nats_py(name: str) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    sub = await js.pull_subscribe(f"{name}.events", durable=f"{name}_workers", stream=name)
    progress = Progress()

    async def loop() -> None:
        while True:
            try:
                msgs = await sub.fetch(IN_FLIGHT, timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            for m in msgs:
                progress.handled(float(m.data))
                await m.ack()

    await run_until_term(loop(), progress)
    await nc.close()


async def run_until_term(work: Any, progress: Progress) -> None:
    task = asyncio.ensure_future(work)
    reporter = asyncio.ensure_future(progress.report_forever())
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    print("ready", flush=True)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    reporter.cancel()
    progress.finish()


# --------------------------------------------------------------------------------------------
# one run: a fresh queue, W consumers, N events


class Consumer:
    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "consume", *args], stdout=subprocess.PIPE, text=True
        )
        self.count = 0
        self.latencies: list[float] = []
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("ready"):
                self.ready.set()
            elif line.startswith("n "):
                self.count = int(line[2:])
            elif line.startswith("lat "):
                self.latencies = json.loads(line[4:])

    def stop(self, stuck: bool = False) -> None:
        if stuck and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(0.5)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(10)


class Run:
    """One contender's run on a fresh queue."""

    def __init__(self, contender: str, workers: int, events: int, tmp: str) -> None:
        self.contender = contender
        self.workers = workers
        self.events = events
        self.name = f"bench_queues_{uuid.uuid4().hex[:10]}"
        self.schema = self.name
        backend = contender.removeprefix("interlock-").removesuffix("-prefetch")
        self.backend = (
            backend
            if contender.startswith("interlock-")
            else {"aio-pika": "rabbitmq", "nats-py": "nats"}[contender]
        )
        companion = f"sqlite:///{tmp}/{self.name}-companion.db"
        self.store = {
            "sqlite": f"sqlite:///{tmp}/{self.name}.db",
            "postgres": f"{PG_DSN}?schema={self.schema}",
            "rabbitmq": f"{AMQP_URL}?companion={companion}"
            + ("&prefetch=128" if contender.endswith("-prefetch") else ""),
            "nats": f"{NATS_URL}?companion={companion}",
        }[self.backend]

    def _table(self) -> str | None:
        return self.name if self.backend in ("rabbitmq", "nats") else None

    async def setup(self) -> Any:
        if self.contender.startswith("interlock-"):
            from interlock.stores import open_queue

            if self.backend == "postgres":
                import asyncpg

                conn = await asyncpg.connect(PG_DSN)
                await conn.execute(f'CREATE SCHEMA "{self.schema}"')
                await conn.close()
            queue = open_queue(self.store, table=self._table())
            await queue.open()  # declares the queue / stream / table before the consumers start
            return queue
        if self.contender == "aio-pika":
            import aio_pika

            connection = await aio_pika.connect(AMQP_URL)
            channel = await connection.channel(publisher_confirms=True)
            await channel.declare_queue(self.name, durable=True, arguments={"x-queue-type": "quorum"})
            return (connection, channel)
        import nats
        from nats.js.api import RetentionPolicy, StorageType, StreamConfig

        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        await js.add_stream(
            StreamConfig(
                name=self.name,
                subjects=[f"{self.name}.events"],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
            )
        )
        return (nc, js)

    def consumer_args(self) -> list[str]:
        if self.contender.startswith("interlock-"):
            return ["interlock", self.store, self.name]
        return [self.contender, "-", self.name]

    async def publish(self, handle: Any) -> None:
        from interlock.stores import Message

        next_i = 0

        async def putter() -> None:
            nonlocal next_i
            while next_i < self.events:
                i = next_i
                next_i += 1
                body = repr(time.time()).encode()
                if self.contender.startswith("interlock-"):
                    await handle.put(Message("bench", f"e{i}", "t", body, received_at=time.time()))
                elif self.contender == "aio-pika":
                    import aio_pika

                    _, channel = handle
                    await channel.default_exchange.publish(
                        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=self.name,
                    )
                else:
                    _, js = handle
                    await js.publish(f"{self.name}.events", body)

        await asyncio.gather(*(putter() for _ in range(IN_FLIGHT)))

    async def done(self, handle: Any, consumers: list[Consumer]) -> bool:
        if sum(c.count for c in consumers) < self.events:
            return False
        if self.contender.startswith("interlock-"):
            return (await handle.stats()).pending == 0  # handled and acknowledged
        return True

    async def teardown(self, handle: Any) -> None:
        if self.contender.startswith("interlock-"):
            await handle.aclose()
        if self.backend == "postgres":
            import asyncpg

            conn = await asyncpg.connect(PG_DSN)
            await conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            await conn.close()
        elif self.backend == "rabbitmq":
            import aio_pika

            connection = await aio_pika.connect(AMQP_URL)
            for q in (self.name, f"{self.name}.dead"):
                channel = await connection.channel()
                await channel.queue_delete(q)
            channel = await connection.channel()
            await channel.exchange_delete(f"{self.name}.dlx")
            await connection.close()
            if not self.contender.startswith("interlock-"):
                await handle[0].close()
        elif self.backend == "nats":
            import nats

            nc = await nats.connect(NATS_URL)
            js = nc.jetstream()
            for stream in (self.name, f"{self.name}_dead"):
                with contextlib.suppress(Exception):
                    await js.delete_stream(stream)
            await nc.close()
            if not self.contender.startswith("interlock-"):
                await handle[0].close()

    async def measure(self, timeout: float) -> dict[str, Any]:
        handle = await self.setup()
        consumers = [Consumer(self.consumer_args()) for _ in range(self.workers)]
        try:
            for c in consumers:
                if not await asyncio.to_thread(c.ready.wait, 60):
                    raise RuntimeError(f"{self.contender}: a consumer did not start")
            start = time.perf_counter()
            await self.publish(handle)
            published = time.perf_counter() - start
            end = start + timeout
            while not await self.done(handle, consumers):
                if time.perf_counter() > end:
                    break
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - start
        finally:
            stuck = sum(c.count for c in consumers) < self.events
            for c in consumers:
                await asyncio.to_thread(c.stop, stuck and self.contender.startswith("interlock-"))
            await self.teardown(handle)
        latencies = [x for c in consumers for x in c.latencies]
        handled = len(latencies)
        return {
            "events_per_s": handled / elapsed if elapsed else float("nan"),
            "publish_per_s": self.events / published if published else float("nan"),
            "p50": _common.percentile(latencies, 50) if latencies else float("nan"),
            "p99": _common.percentile(latencies, 99) if latencies else float("nan"),
            "handled": handled,
            "complete": handled >= self.events,
        }


async def bench(args: argparse.Namespace) -> None:
    load = _common.Load()
    tmp = tempfile.mkdtemp(prefix="bench-queues-")
    print(f"{args.events} events per run, {IN_FLIGHT} in flight, {args.rounds} round(s)")
    results: dict[str, Any] = {}
    rows = []
    for backend in args.backends:
        contenders = [f"interlock-{backend}"] + (
            ["interlock-rabbitmq-prefetch"] if backend == "rabbitmq" else []
        )
        contenders += [BASELINE[backend]] if backend in BASELINE else []
        for workers in args.workers:
            per: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
            for order in _common.rotations(contenders, args.rounds):
                for contender in order:
                    r = await Run(contender, workers, args.events, tmp).measure(args.timeout)
                    print(
                        f"  {contender:20} workers={workers} {r['events_per_s']:9.0f} events/s  "
                        f"p99 {_common.fmt_ms(r['p99'])} ms  handled {r['handled']}",
                        flush=True,
                    )
                    per[contender].append(r)
            for contender, runs in per.items():
                eps = [r["events_per_s"] for r in runs]
                p99 = [r["p99"] * 1000 for r in runs]
                rows.append(
                    [
                        contender,
                        workers,
                        _common.spread(eps, "{:.0f}"),
                        _common.spread(p99, "{:.1f}", " ms"),
                        _common.spread([r["publish_per_s"] for r in runs], "{:.0f}"),
                        "yes" if all(r["complete"] for r in runs) else "NO",
                    ]
                )
                results[f"{contender}/w{workers}"] = {
                    "events_per_s": _common.med(eps),
                    "p99_ms": _common.med(p99),
                    "complete": all(r["complete"] for r in runs),
                }
            if backend in BASELINE:
                theirs = results[f"{BASELINE[backend]}/w{workers}"]
                for contender in contenders[:-1]:
                    ours = results[f"{contender}/w{workers}"]
                    ours["ratio_to_baseline"] = ours["events_per_s"] / theirs["events_per_s"]
    print()
    print(_common.table(["contender", "workers", "events/s", "p99 latency", "publish/s", "complete"], rows))
    print()
    for backend in args.backends:
        if backend not in BASELINE:
            continue
        mine = [f"interlock-{backend}"] + (["interlock-rabbitmq-prefetch"] if backend == "rabbitmq" else [])
        for workers, contender in ((w, c) for w in args.workers for c in mine):
            ours = results[f"{contender}/w{workers}"]
            theirs = results[f"{BASELINE[backend]}/w{workers}"]
            target = "meets" if ours["events_per_s"] >= 5000 else "misses"
            print(
                f"{contender} vs {BASELINE[backend]} ({workers} worker process(es)): "
                f"{ours['events_per_s']:.0f} vs {theirs['events_per_s']:.0f} events/s = "
                f"{ours['events_per_s'] / theirs['events_per_s']:.2f}x of the hand-written client "
                f"({target} the 5,000 events/s target)"
            )
    results.update(load.end())
    _common.emit("queues", results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    consume = sub.add_parser("consume", help=argparse.SUPPRESS)
    consume.add_argument("kind")
    consume.add_argument("store")
    consume.add_argument("name")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backends", nargs="+", default=BACKENDS, choices=BACKENDS)
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="give up on a run after this many seconds"
    )
    args = parser.parse_args()
    if args.cmd == "consume":
        if args.kind == "interlock":
            asyncio.run(consume_interlock(args.store, args.name))
        elif args.kind == "aio-pika":
            asyncio.run(consume_aio_pika(args.name))
        else:
            asyncio.run(consume_nats_py(args.name))
        return
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
