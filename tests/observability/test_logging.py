"""interlock.logging: one JSON object per line, Interlock's fields, secrets masked before writing."""

from __future__ import annotations

import io
import json
import logging

import pytest

import interlock.logging as ilog
from interlock._ids import correlation_id
from interlock._redact import DEFAULT_HEADERS, Redaction
from interlock.inbox._source import SENSITIVE_HEADERS


def _record(
    msg: str, *args: object, extra: dict[str, object] | None = None, level: int = logging.INFO
) -> logging.LogRecord:
    logger = logging.getLogger("interlock.test")
    return logger.makeRecord("interlock.test", level, __file__, 1, msg, args, None, extra=extra)


def test_one_object_per_line_with_the_standard_keys_and_interlock_fields() -> None:
    fields = {
        "upstream": "api",
        "route": "/customers/{id}",
        "status": 502,
        "attempts": 3,
        "duration_ms": 12.5,
        "tracking_id": "tb-1",
        "request_id": "rid-7",
    }
    line = ilog.JSONFormatter().format(
        _record("GET %s failed", "api/customers/1", extra={"interlock": fields})
    )
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["level"] == "INFO" and doc["logger"] == "interlock.test"
    assert doc["message"] == "GET api/customers/1 failed"
    assert doc["time"].endswith("Z") and doc["time"][4] == "-"
    for key, value in fields.items():
        assert doc[key] == value
    assert doc["correlation_id"] == "rid-7"  # the call's request id is its correlation id
    assert list(doc)[:4] == ["time", "level", "logger", "message"]


def test_the_correlation_id_of_the_context_and_extra_keys_are_fields() -> None:
    with correlation_id("evt_42"):
        doc = json.loads(ilog.JSONFormatter().format(_record("handled", extra={"order": "o-9"})))
    assert doc["correlation_id"] == "evt_42"
    assert doc["order"] == "o-9"


def test_credentials_are_masked_in_message_fields_and_exceptions() -> None:
    fields = {
        "url": "https://u:hunter2@api.test/x?api_key=sekret1&page=2",
        "headers": {"Authorization": "Bearer tok-abc", "Accept": "*/*"},
        "cookie": "session=s3ss10n",
    }
    try:
        raise RuntimeError("upstream said: Authorization: Bearer tok-abc")
    except RuntimeError:
        import sys

        record = logging.getLogger("x").makeRecord(
            "x",
            logging.ERROR,
            __file__,
            1,
            "calling %s",
            ("https://api.test/?token=t0k3n",),
            sys.exc_info(),
            extra={"interlock": fields},
        )
    line = ilog.JSONFormatter().format(record)
    for secret in ("hunter2", "sekret1", "tok-abc", "s3ss10n", "t0k3n"):
        assert secret not in line, secret
    doc = json.loads(line)
    assert doc["headers"] == {"Authorization": "***", "Accept": "*/*"}
    assert "page=2" in doc["url"]
    assert "RuntimeError" in doc["exception"]


def test_configured_json_paths_are_masked_in_documents_and_json_text() -> None:
    fmt = ilog.JSONFormatter(json_paths=["$.card.number", "$.password"])
    body = {"card": {"number": "4111111111111111", "exp": "12/30"}, "password": "pw-1", "name": "Ada"}
    doc = json.loads(fmt.format(_record("order %s", json.dumps(body), extra={"body": body})))
    assert doc["body"] == {"card": {"number": "***", "exp": "12/30"}, "password": "***", "name": "Ada"}
    assert "4111111111111111" not in doc["message"] and "Ada" in doc["message"]
    assert body["card"]["number"] == "4111111111111111"  # the caller's object is untouched


def test_a_bad_json_path_is_a_precise_config_error() -> None:
    from interlock.errors import ConfigError

    with pytest.raises(ConfigError, match="json_paths"):
        ilog.JSONFormatter(json_paths=["$.a..["])
    with pytest.raises(TypeError):
        ilog.JSONFormatter(json_paths="$.card.number")


def test_a_client_redaction_extends_the_masked_headers() -> None:
    fmt = ilog.JSONFormatter(redaction=Redaction().extended(headers=["X-Shop-Token"]))
    doc = json.loads(fmt.format(_record("x", extra={"headers": {"X-Shop-Token": "shop-1"}})))
    assert doc["headers"] == {"X-Shop-Token": "***"}


def test_long_fields_are_bounded() -> None:
    doc = json.loads(ilog.JSONFormatter().format(_record("x", extra={"blob": "a" * 100_000})))
    assert len(doc["blob"]) <= 8192 and doc["blob"].endswith("...")


def test_one_list_of_sensitive_headers() -> None:
    assert SENSITIVE_HEADERS is DEFAULT_HEADERS


def test_configure_installs_one_handler_json_or_text() -> None:
    out = io.StringIO()
    logger = logging.getLogger("interlock.cfgtest")
    try:
        ilog.configure(level="DEBUG", stream=out, logger="interlock.cfgtest")
        ilog.configure(level="DEBUG", stream=out, logger="interlock.cfgtest")  # replaces, not adds
        assert len(logger.handlers) == 1
        logger.info("hello", extra={"interlock": {"status": 200}})
        assert json.loads(out.getvalue())["status"] == 200
        text = io.StringIO()
        ilog.configure(level="INFO", stream=text, format="text", logger="interlock.cfgtest")
        logger.info("Authorization: Bearer zzz-secret")
        assert "zzz-secret" not in text.getvalue() and "INFO interlock.cfgtest" in text.getvalue()
        with pytest.raises(ValueError, match="format"):
            ilog.configure(format="xml")
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
        logger.setLevel(logging.NOTSET)


def test_structlog_processor_passes_the_fields_unchanged() -> None:
    record = _record("x", extra={"interlock": {"upstream": "api", "status": 503, "attempts": 2}})
    event = ilog.add_interlock_fields(None, "info", {"event": "x", "_record": record, "status": 1})
    assert event["upstream"] == "api" and event["attempts"] == 2
    assert event["status"] == 1  # what the event already had is kept
    with correlation_id("cid-1"):
        assert ilog.add_interlock_fields(None, "info", {"event": "y"})["correlation_id"] == "cid-1"
    masked = ilog.redact_event(None, "info", {"event": "GET ?api_key=k3y", "authorization": "Bearer b"})
    assert masked == {"event": "GET ?api_key=***", "authorization": "***"}


def test_structlog_end_to_end_through_the_stdlib_formatter() -> None:
    import structlog

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[ilog.add_interlock_fields, ilog.redact_event],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    logger = logging.getLogger("interlock.structtest")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("GET /x?api_key=k3y", extra={"interlock": {"upstream": "api", "status": 200}})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    doc = json.loads(out.getvalue())
    assert doc["upstream"] == "api" and doc["status"] == 200
    assert "k3y" not in out.getvalue()
