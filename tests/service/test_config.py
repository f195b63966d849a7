"""The config file: every mistake one message naming the file, the key path, what is wrong and
what is accepted; ${VAR} interpolation; secrets redacted; the schema; the example runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import hypothesis
import pytest
from hypothesis import strategies as st

from interlock.service import ConfigFileError, config_schema, load_config, parse_config
from interlock.service._config import resolve_handlers, validate_document

EXAMPLE = Path(__file__).parents[2] / "examples" / "interlock.toml"
UP = "[upstreams.crm]\nbase_url = 'http://127.0.0.1:8080'\n"
HOOK = "[sources.billing]\nscheme = 'stripe'\nsecrets = ['whsec_x']\n"

MISTAKES = [
    pytest.param("[servr]\nport = 1\n", "servr", "unknown key 'servr'; did you mean 'server'?", id="unknown-section"),
    pytest.param(UP + "retry = { attmpts = 3 }\n", "upstreams.crm.retry.attmpts", "did you mean 'attempts'?", id="unknown-nested-key"),
    pytest.param(UP + "retry = { attempts = 0 }\n", "upstreams.crm.retry.attempts", "must be >= 1, got 0", id="too-small"),
    pytest.param("[server]\nport = '80'\n", "server.port", "must be an integer, got '80'", id="wrong-type"),
    pytest.param("[server]\nport = 70000\n", "server.port", "must be <= 65535, got 70000", id="out-of-range"),
    pytest.param(
        "[server]\nadmin_token = '${NOPE_TOKEN}'\n", "server.admin_token",
        "environment variable NOPE_TOKEN is not set", id="missing-variable",
    ),
    pytest.param("[server]\nadmin_token = '${bad-name}'\n", "server.admin_token", "malformed reference", id="malformed-variable"),
    pytest.param("[upstreams.crm]\nbase_url = 'ftp://x'\n", "upstreams.crm.base_url", "must be an absolute http(s) URL", id="bad-url"),
    pytest.param(
        HOOK.replace("stripe", "strip") + "handler = 'a:b'\n", "sources.billing.scheme",
        "must be one of 'standard-webhooks', 'stripe'", id="unknown-scheme",
    ),
    pytest.param(HOOK, "sources.billing", 'give exactly one of handler = "module:function" or forward', id="no-handler"),
    pytest.param(HOOK + "handler = 'not a ref'\n", "sources.billing.handler", 'must be "module:function"', id="bad-handler-ref"),
    pytest.param("[server\n", "", "not valid TOML", id="toml-syntax"),
    pytest.param(
        "[syncs.s]\nupstream = 'crn'\npath = '/c'\nhandler = 'a:b'\n" + UP, "syncs.s.upstream",
        "no upstream named 'crn'; did you mean 'crm'?", id="unknown-upstream-reference",
    ),
    pytest.param(
        UP + "cache = { routes = { 'industries' = 5 } }\n", "upstreams.crm.cache",
        "a route template starts with '/'", id="library-refusal",
    ),
    pytest.param("[server]\nworkers = 2\n", "server.workers", "cannot share a SQLite store", id="workers-on-sqlite"),
    pytest.param(UP + "concurrency = 0\n", "upstreams.crm.concurrency", "must be >= 1, got 0", id="union-int"),
    pytest.param(UP + "retry = true\n", "upstreams.crm.retry", "must be false (to switch the policy off)", id="policy-true"),
    pytest.param("[upstreams.'a b']\nbase_url = 'http://x'\n", 'upstreams."a b"', "is not a valid name", id="bad-name"),
    pytest.param("[server]\nadmin_token = 'short'\n", "server.admin_token", "at least 16 characters", id="short-token"),
    pytest.param("[store]\nurl = 'mysql://u:pw@h/db'\n", "store.url", "must be sqlite:///PATH or postgresql://", id="bad-store"),
    pytest.param(
        UP + "rate_limit = { adaptive = false }\n", "upstreams.crm.rate_limit", "give per_second", id="rate-limit-without-rate"
    ),
    pytest.param(UP + "breaker = { failure_ratio = 2.0 }\n", "upstreams.crm.breaker.failure_ratio", "must be <= 1", id="breaker-ratio"),
]


@pytest.mark.parametrize(("text", "path", "expected"), MISTAKES)
def test_each_mistake_is_one_message_with_file_and_key_path(text: str, path: str, expected: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        parse_config(text, file="conf/interlock.toml", env={})
    message = str(caught.value)
    assert message.startswith(f"conf/interlock.toml: {path}: " if path else "conf/interlock.toml: "), message
    assert expected in message
    assert caught.value.path == path
    assert "\n" not in message and "Traceback" not in message


def test_a_secret_in_a_mistake_is_not_quoted() -> None:
    with pytest.raises(ConfigFileError) as caught:
        parse_config("[store]\nurl = 'mysql://user:hunter2hunter2@h/db'\n", env={})
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigFileError) as caught:
        parse_config(UP + "headers = { Authorization = 42 }\n", env={})
    assert "42" not in str(caught.value) and "upstreams.crm.headers.Authorization" in str(caught.value)


def test_variables_and_defaults_are_filled_from_the_environment() -> None:
    text = UP + "headers = { Authorization = 'Bearer ${CRM_TOKEN}', X-Region = '${REGION:-eu}' }\n" + "[server]\nadmin_token = '$${LITERAL}-0123456789abcdef'\n"
    loaded = parse_config(text, env={"CRM_TOKEN": "tok-123"})
    up = loaded.config.upstreams["crm"]
    assert up.headers == {"Authorization": "Bearer tok-123", "X-Region": "eu"}
    token = loaded.config.server.admin_token
    assert token is not None and token.get_secret_value() == "${LITERAL}-0123456789abcdef"
    # An empty variable takes the default, as in the shell.
    assert parse_config(UP + "headers = { X = '${E:-d}' }\n", env={"E": ""}).config.upstreams["crm"].headers["X"] == "d"


def test_the_effective_config_redacts_every_secret() -> None:
    text = (
        "[server]\nadmin_token = '${ADMIN}'\n[store]\nurl = 'postgresql://app:pgpass-secret@db/x'\n"
        + UP
        + "headers = { Authorization = 'Bearer ${CRM}', X-Api-Key = 'inline-key', X-Plain = 'visible' }\n"
        + "callers = ['caller-token-123']\n"
        + HOOK.replace("whsec_x", "${HOOK_SECRET}")
        + "forward = 'http://127.0.0.1:9/in'\nheaders = { X-Internal = '${INTERNAL}' }\n"
    )
    env = {"ADMIN": "admin-secret-0123456789", "CRM": "crm-secret", "HOOK_SECRET": "whsec_hook", "INTERNAL": "int-secret"}
    loaded = parse_config(text, env=env)
    shown = json.dumps(loaded.redacted())
    for secret in ("admin-secret", "pgpass-secret", "crm-secret", "inline-key", "caller-token-123", "whsec_hook", "int-secret"):
        assert secret not in shown, secret
    assert "visible" in shown and "***" in shown
    assert "crm-secret" not in repr(loaded) and "crm-secret" not in repr(loaded.config)


def test_a_handler_that_cannot_be_imported_is_named_with_its_key_path() -> None:
    loaded = parse_config(HOOK + "handler = 'json:dumpz'\n", env={})
    with pytest.raises(ConfigFileError) as caught:
        resolve_handlers(loaded)
    assert str(caught.value).startswith("interlock.toml: sources.billing.handler: module 'json' has no 'dumpz'")
    assert "did you mean 'dump'?" in str(caught.value)
    loaded = parse_config(HOOK + "handler = 'no_such_module_x:f'\n", env={})
    with pytest.raises(ConfigFileError, match="cannot import module 'no_such_module_x'"):
        resolve_handlers(loaded)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="no such file"):
        load_config(tmp_path / "absent.toml")


def test_the_example_is_valid_without_any_variable_set() -> None:
    loaded = load_config(EXAMPLE, env={})
    assert sorted(loaded.config.upstreams) == ["crm"]
    assert loaded.config.upstreams["crm"].base_url == "http://127.0.0.1:8080"  # `interlock testbed`'s default port
    assert loaded.config.sources["billing"].forward is not None


def test_the_schema_describes_the_sections_and_forbids_unknown_keys() -> None:
    schema = config_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert {"server", "store", "upstreams", "sources", "syncs", "alerts"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    retry = schema["$defs"]["RetryConfig"]
    assert retry["properties"]["attempts"]["minimum"] == 1


def test_check_and_schema_commands(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "interlock", "check", "-c", str(EXAMPLE)], capture_output=True, text=True, env={"PATH": ""})
    assert ok.returncode == 0, ok.stderr
    assert "ok (1 upstreams, 1 sources, 0 syncs" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(UP + "retry = { attmpts = 3 }\n")
    failed = subprocess.run([sys.executable, "-m", "interlock", "check", "-c", str(bad)], capture_output=True, text=True)
    assert failed.returncode == 2
    assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr
    assert f"interlock check: error: {bad}: upstreams.crm.retry.attmpts: unknown key 'attmpts'" in failed.stderr
    schema = subprocess.run([sys.executable, "-m", "interlock", "config", "schema"], capture_output=True, text=True)
    assert schema.returncode == 0 and json.loads(schema.stdout)["title"] == "interlock.toml"


_KEYS = st.sampled_from(
    ["server", "store", "upstreams", "sources", "syncs", "alerts", "inbox", "crm", "billing", "port", "host",
     "admin_token", "url", "base_url", "retry", "attempts", "breaker", "cache", "routes", "/x", "/y/{id}",
     "rate_limit", "per_second", "concurrency", "timeout", "scheme", "secrets", "handler", "forward", "headers",
     "callers", "batch", "route", "via", "workers", "backoff", "base", "cap", "p95_above", "webhook_url", "delivery"]
)
_LEAVES = st.one_of(
    st.integers(-5, 70000), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.sampled_from(["", "x", "http://127.0.0.1:9", "sqlite:///x.db", "stripe", "json:dumps", "${NOPE}", "${A:-b}",
                     "/customers/{id}", "redis://h", "a" * 40, "ftp://x", "postgresql://u:pw@h/db"]),
)
_DOCS = st.recursive(
    st.dictionaries(_KEYS, _LEAVES, max_size=4),
    lambda children: st.dictionaries(_KEYS, st.one_of(children, st.lists(children, max_size=2), _LEAVES), max_size=4),
    max_leaves=20,
)


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(_DOCS)
def test_any_document_is_valid_or_one_precise_mistake(doc: dict[str, object]) -> None:
    try:
        validate_document(doc, file="f.toml", env={})
    except ConfigFileError as exc:
        message = str(exc)
        assert message.startswith("f.toml: ") and "\n" not in message
        assert "pw@" not in message  # a password in a URL is never quoted


def test_an_upstream_auth_table_builds_its_credentials_and_hides_its_secrets() -> None:
    from interlock.auth import ApiKey, OAuth2ClientCredentials
    from interlock.service._config import client_options

    text = (
        "[store]\nurl = 'sqlite:///tokens-test.db'\n"
        + UP
        + "auth = { type = 'oauth2_client_credentials', token_url = 'https://login.test/oauth/token',"
        " client_id = 'crm-sync', client_secret = '${CRM_SECRET}', scopes = ['contacts.read'] }\n"
        + "[upstreams.erp]\nbase_url = 'https://erp.test'\nauth = { type = 'api_key', key = 'inline-api-key', query = 'apiKey' }\n"
    )
    loaded = parse_config(text, env={"CRM_SECRET": "cs-very-secret"})
    crm = client_options(loaded, "crm")["auth"]
    assert isinstance(crm, OAuth2ClientCredentials) and crm.scopes == ("contacts.read",)
    assert "tokens-test.db" in repr(crm)  # tokens shared through [store] url by default
    assert isinstance(client_options(loaded, "erp")["auth"], ApiKey)
    shown = json.dumps(loaded.redacted()) + repr(loaded.config)
    assert "cs-very-secret" not in shown and "inline-api-key" not in shown
    assert "crm-sync" in json.dumps(loaded.redacted())


@pytest.mark.parametrize(
    ("table", "path", "expected"),
    [
        ("{ type = 'kerberos' }", "upstreams.crm.auth.type", "must be one of bearer"),
        ("{ type = 'basic', username = 'u' }", "upstreams.crm.auth.password", "is required"),
        ("{ type = 'bearer', token = 't', secret = 'leak-me' }", "upstreams.crm.auth.secret", "is not a setting"),
    ],
)
def test_a_mistake_in_an_auth_table_names_its_key(table: str, path: str, expected: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        parse_config(UP + f"auth = {table}\n")
    assert path in str(caught.value) and expected in str(caught.value)
    assert "leak-me" not in str(caught.value)
