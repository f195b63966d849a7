"""A receiving process for the cross-process trace test: serves the Inbox with real uvicorn on
a free port, traced by the SDK, printing the port, then each finished span as a JSON line."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import interlock

SECRET = "obs-secret"


class Printing(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for s in spans:
            ctx = s.get_span_context()
            line = {"name": s.name, "trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}"}
            print(json.dumps(line), flush=True)
        return SpanExportResult.SUCCESS


def main(db: str) -> None:
    import socket

    import uvicorn

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Printing()))
    trace.set_tracer_provider(provider)
    box = interlock.Inbox(store=f"sqlite:///{db}")
    box.source("github", interlock.signatures.GitHub(SECRET))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    config = uvicorn.Config(box.asgi(), log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1])
