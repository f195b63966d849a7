"""observability: what do tracing (100 % sampled) and the interaction log cost on the happy path?

50-way concurrent GETs against a fault-free testbed in a child process (answering at once, so
throughput is CPU-bound; ``--latency-ms 20`` for a third party's usual answer time), in rounds that rotate
the contenders (A B C, B C A, ...); medians with min-max:
  - interlock.Client, tracing off: the baseline (the same client as every other row);
  - the same traced: an OpenTelemetry SDK provider sampling 100 % (ALWAYS_ON), a span per call
    and a span per attempt, handed to a BatchSpanProcessor whose exporter drops them (the cost
    of making and processing spans, not of a network exporter);
  - the same with an interaction log keeping failures only (SQLite): on a success path nothing
    is kept, so the cost is what the capture of each attempt adds;
  - the webhook path (``--webhooks``): signed webhooks into the Inbox's ASGI app, committed to
    SQLite, untraced against traced (a server span continuing each webhook's traceparent and a
    create span whose context is stored with the event);
  - the reference for tracing: bare aiohttp, and bare aiohttp with the contrib
    opentelemetry-instrumentation-aiohttp-client (one span per request): what a team that
    instruments its own aiohttp calls pays for the same 100 % sampling.
The judgement is throughput and client CPU per request, each row to its own baseline measured
in the same rounds (target: tracing <= 5 % of throughput, the failures-only log not measurable).

    .venv/bin/python benchmarks/observability.py [--requests 3000] [--rounds 3] [--concurrency 50] [--latency-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence

import _common
import aiohttp
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

import interlock
import interlock.tracing
from interlock.testbed import Faults, Latency, TestbedConfig, spawn_testbed


class Dropping(SpanExporter):
    """Counts the spans it is handed and drops them."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


EXPORTER = Dropping()
PROVIDER = TracerProvider(sampler=ALWAYS_ON)
PROVIDER.add_span_processor(BatchSpanProcessor(EXPORTER, max_queue_size=65536, max_export_batch_size=2048))
trace.set_tracer_provider(PROVIDER)
LOG_DIR = tempfile.mkdtemp(prefix="interlock-bench-")


async def client(url: str, n: int, c: int, records: int, *, traced: bool = False, log: bool = False) -> float:
    (interlock.tracing.enable if traced else interlock.tracing.disable)()
    options: dict[str, object] = {"coalesce": False}
    if log:
        options["interactions"] = interlock.InteractionLog(store=os.path.join(LOG_DIR, "log.db"))
    try:
        async with interlock.Client(url, **options) as api:  # type: ignore[arg-type]

            async def get(path: str) -> int:
                return (await api.get(path)).status

            return await _common.drive(get, n, c, records)
    finally:
        interlock.tracing.disable()


async def bare(url: str, n: int, c: int, records: int, *, instrumented: bool = False) -> float:
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

    instrumentor = AioHttpClientInstrumentor()
    if instrumented:
        instrumentor.instrument(tracer_provider=PROVIDER)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

            async def get(path: str) -> int:
                async with session.get(url + path) as r:
                    await r.read()
                    return r.status

            return await _common.drive(get, n, c, records)
    finally:
        if instrumented:
            instrumentor.uninstrument()


CONTENDERS: dict[str, Callable[[str, int, int, int], Awaitable[float]]] = {
    "Client": client,
    "Client traced 100%": lambda *a: client(*a, traced=True),
    "Client + failures-only log": lambda *a: client(*a, log=True),
    "bare aiohttp": bare,
    "aiohttp + contrib instrumentation": lambda *a: bare(*a, instrumented=True),
}
BASELINE_OF = {
    "Client": "Client",
    "Client traced 100%": "Client",
    "Client + failures-only log": "Client",
    "bare aiohttp": "bare aiohttp",
    "aiohttp + contrib instrumentation": "bare aiohttp",
}


# --------------------------------------------------------------------------------------------
# the webhook path: POST /hooks/{source} into the Inbox's ASGI app, stored in SQLite


async def ingest(n: int, c: int, *, traced: bool) -> float:
    """Webhooks per second acknowledged by the Inbox's ASGI app (called in process, as uvicorn
    would), each verified, deduplicated and committed to a fresh SQLite file; traced: the
    server and create spans, the trace context stored with each event."""
    import hashlib
    import hmac
    import json

    (interlock.tracing.enable if traced else interlock.tracing.disable)()
    path = os.path.join(tempfile.mkdtemp(prefix="interlock-bench-ingest-"), "inbox.db")
    box = interlock.Inbox(store=f"sqlite:///{path}")
    box.source(
        "shop", interlock.signatures.HMAC("bench-secret", header="X-Sig"), dedupe="$.id", event_type="$.type"
    )
    app = box.asgi()
    counter = iter(range(n))
    failures = 0

    async def post(i: int) -> int:
        body = json.dumps({"id": f"evt_{i}", "type": "order.paid", "order": i}).encode()
        sig = hmac.new(b"bench-secret", body, hashlib.sha256).hexdigest()
        headers = [
            (b"x-sig", sig.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"traceparent", f"00-{i + 1:032x}-{i + 1:016x}-01".encode()),
        ]
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/hooks/shop",
            "root_path": "",
            "headers": headers,
            "scheme": "http",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 5000),
        }
        sent: list[int] = []
        done = False

        async def receive() -> dict[str, object]:
            nonlocal done
            if done:
                return {"type": "http.disconnect"}
            done = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                sent.append(int(message["status"]))  # type: ignore[call-overload]

        await app(scope, receive, send)
        return sent[0]

    async def worker() -> None:
        nonlocal failures
        for i in counter:
            if await post(i) != 200:
                failures += 1

    try:
        await box.open()
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        elapsed = time.perf_counter() - start
    finally:
        await box.aclose()
        interlock.tracing.disable()
    if failures:
        raise RuntimeError(f"{failures} webhooks refused: the comparison would be meaningless")
    return n / elapsed


INGEST = {"Inbox ingest": False, "Inbox ingest traced 100%": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="the testbed's answer time (0: at once, CPU-bound; 20: a typical third-party API)",
    )
    parser.add_argument(
        "--webhooks", type=int, default=3000, help="webhooks per ingest run (0: skip the ingest rows)"
    )
    args = parser.parse_args()
    load = _common.Load()
    records = 1000
    rates: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    cpu_us: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    faults = Faults(latency=Latency("fixed", ms=args.latency_ms)) if args.latency_ms else Faults()
    with spawn_testbed(TestbedConfig(records=records, faults=faults)) as testbed:
        for run in CONTENDERS.values():  # warm-up
            asyncio.run(run(testbed.url, 300, args.concurrency, records))
        for round_no, order in enumerate(_common.rotations(list(CONTENDERS), args.rounds), 1):
            for name in order:
                before = time.process_time()
                rates[name].append(
                    asyncio.run(CONTENDERS[name](testbed.url, args.requests, args.concurrency, records))
                )
                cpu_us[name].append((time.process_time() - before) / args.requests * 1e6)
            print(
                f"round {round_no}: "
                + ", ".join(f"{k} {rates[k][-1]:.0f}/s {cpu_us[k][-1]:.0f}us" for k in order),
                flush=True,
            )
    ingest_rates: dict[str, list[float]] = {name: [] for name in INGEST}
    ingest_cpu: dict[str, list[float]] = {name: [] for name in INGEST}
    if args.webhooks:
        asyncio.run(ingest(300, args.concurrency, traced=True))  # warm-up
        for round_no, order in enumerate(_common.rotations(list(INGEST), args.rounds), 1):
            for name in order:
                before = time.process_time()
                ingest_rates[name].append(
                    asyncio.run(ingest(args.webhooks, args.concurrency, traced=INGEST[name]))
                )
                ingest_cpu[name].append((time.process_time() - before) / args.webhooks * 1e6)
            print(
                f"ingest round {round_no}: " + ", ".join(f"{k} {ingest_rates[k][-1]:.0f}/s" for k in order),
                flush=True,
            )
    PROVIDER.force_flush()
    med = _common.med
    rows = []
    for name in CONTENDERS:
        base = BASELINE_OF[name]
        rows.append((
            name, base,
            _common.spread(rates[name], "{:.0f}"), f"{med(rates[name]) / med(rates[base]):.3f}x",
            _common.spread(cpu_us[name], "{:.0f}"), f"{med(cpu_us[name]) - med(cpu_us[base]):+.0f}",
        ))  # fmt: skip
    print()
    print(
        f"{args.requests} GETs x {args.rounds} rounds (rotated), {args.concurrency}-way, testbed in a child process"
        f" answering in {args.latency_ms:g} ms; median (min-max)"
    )
    print(
        _common.table(["contender", "vs", "req/s", "throughput vs", "client CPU us/req", "CPU us vs"], rows)
    )
    traced = med(rates["Client traced 100%"]) / med(rates["Client"])
    logged = med(rates["Client + failures-only log"]) / med(rates["Client"])
    contrib = med(rates["aiohttp + contrib instrumentation"]) / med(rates["bare aiohttp"])
    print(
        f"tracing at 100 % sampling: {traced:.3f}x the untraced Client's throughput ({(1 - traced) * 100:+.1f} % cost; target <= 5 %)"
    )
    print(f"  reference: the contrib aiohttp instrumentation costs bare aiohttp {(1 - contrib) * 100:+.1f} %")
    print(
        f"failures-only interaction log: {logged:.3f}x ({(1 - logged) * 100:+.1f} %; within the rounds' spread is 'not measurable')"
    )
    if args.webhooks:
        base = "Inbox ingest"
        print()
        print(
            f"{args.webhooks} signed webhooks x {args.rounds} rounds into the ASGI app, {args.concurrency}-way, one SQLite file per run"
        )
        print(_common.table(
            ["contender", "webhooks/s", "throughput vs", "CPU us/webhook", "CPU us vs"],
            [(name, _common.spread(ingest_rates[name], "{:.0f}"), f"{med(ingest_rates[name]) / med(ingest_rates[base]):.3f}x",
              _common.spread(ingest_cpu[name], "{:.0f}"), f"{med(ingest_cpu[name]) - med(ingest_cpu[base]):+.0f}")
             for name in INGEST],
        ))  # fmt: skip
        ratio = med(ingest_rates["Inbox ingest traced 100%"]) / med(ingest_rates[base])
        print(
            f"ingest traced at 100 % sampling: {ratio:.3f}x ({(1 - ratio) * 100:+.1f} % cost; target <= 5 %)"
        )
    print(f"spans exported (dropped): {EXPORTER.spans}")
    _common.emit(
        "observability",
        {
            "requests": args.requests, "rounds": args.rounds, "concurrency": args.concurrency,
            "latency_ms": args.latency_ms,
            "rps": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
            "median_rps": {k: round(med(v), 1) for k, v in rates.items()},
            "client_cpu_us_per_request": {k: round(med(v), 1) for k, v in cpu_us.items()},
            "tracing_throughput_ratio": round(traced, 3), "log_throughput_ratio": round(logged, 3),
            "contrib_throughput_ratio": round(contrib, 3), "spans": EXPORTER.spans,
            "ingest_median_rps": {k: round(med(v), 1) for k, v in ingest_rates.items()},
            "ingest_cpu_us_per_webhook": {k: round(med(v), 1) for k, v in ingest_cpu.items()},
            **load.end(),
        },
    )  # fmt: skip


if __name__ == "__main__":
    main()
