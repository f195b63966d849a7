"""Every scheme accepts genuine signatures (from the providers' own libraries or documented
examples) and refuses tampered bodies, wrong secrets, stale timestamps and missing headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import standardwebhooks
import stripe
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from interlock.errors import ConfigError, SignatureInvalid
from interlock.inbox import signatures as sig

NOW = time.time()
BODY = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": {"object": {"customer": "cus_9"}}}).encode()
SW_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-test-secret-32").decode()
SW_OTHER = "whsec_" + base64.b64encode(b"another-secret-for-rotation-0001").decode()
STRIPE_SECRET = "whsec_test_stripe_secret_abc123"


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def rejects(
    scheme: sig.SignatureScheme,
    body: bytes,
    headers: dict[str, str],
    now: float = NOW,
    *,
    reason: str | re.Pattern[str],
) -> str:
    """Assert ``verify`` refuses with exactly the message ``reason`` (a pattern must match all
    of it): a rejection for the wrong reason (a missing header reported when the digest was
    wrong) is a failure too, and so is a message naming the wrong scheme or header."""
    with pytest.raises(SignatureInvalid) as info:
        scheme.verify(body, lower(headers), now)
    message = str(info.value)
    matched = reason.fullmatch(message) if isinstance(reason, re.Pattern) else message == reason
    assert matched, f"rejected, but for another reason: {message!r}, expected {reason!r}"
    return message


def stale(scheme: str, seconds: str) -> re.Pattern[str]:
    """The tolerance refusal, ``seconds`` a pattern for the signed offset (``+30[12]``)."""
    return re.compile(re.escape(scheme) + f" timestamp is {seconds} s from now, outside the 300 s tolerance \\(stale or replayed delivery, or a clock out of sync\\)")


MISMATCH = {
    "standard-webhooks": "no webhook-signature matches the configured secrets (Standard Webhooks)",
    "stripe": "no v1 signature in Stripe-Signature matches the configured secrets",
    "github": "X-Hub-Signature-256 does not match the configured secrets",
    "shopify": "X-Shopify-Hmac-Sha256 does not match the configured secrets",
    "slack": "X-Slack-Signature does not match the configured secrets",
    "hmac": "x-sig does not match the configured secrets",
}


def flip_last_byte(signature: str, encoding: str) -> str:
    """The signature with its last *decoded* byte changed (flipping a base64 character could
    touch only padding bits and decode to the same digest)."""
    raw = bytearray(bytes.fromhex(signature) if encoding == "hex" else base64.b64decode(signature))
    raw[-1] ^= 0x01
    return raw.hex() if encoding == "hex" else base64.b64encode(bytes(raw)).decode()


def drop_last_byte(signature: str, encoding: str) -> str:
    """The signature truncated by one decoded byte."""
    raw = bytes.fromhex(signature) if encoding == "hex" else base64.b64decode(signature)
    return raw[:-1].hex() if encoding == "hex" else base64.b64encode(raw[:-1]).decode()


# -- Standard Webhooks ---------------------------------------------------------------------------


def sw_headers(secret: str = SW_SECRET, *, msg_id: str = "msg_1", ts: float = NOW, body: bytes = BODY) -> dict[str, str]:
    stamp = datetime.fromtimestamp(int(ts), tz=UTC)
    signature = standardwebhooks.Webhook(secret).sign(msg_id, stamp, body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(ts)), "webhook-signature": signature}


def test_standard_webhooks_accepts_the_official_signer() -> None:
    headers = sw_headers()
    # The official verifier agrees with the headers we test with.
    standardwebhooks.Webhook(SW_SECRET).verify(BODY, headers)
    sig.StandardWebhooks([SW_SECRET]).verify(BODY, lower(headers), NOW)


def test_standard_webhooks_accepts_svix_header_names_and_several_signatures() -> None:
    h = sw_headers()
    both = f"v1,{base64.b64encode(b'x' * 32).decode()} {h['webhook-signature']}"
    svix = {"svix-id": h["webhook-id"], "svix-timestamp": h["webhook-timestamp"], "svix-signature": both}
    sig.StandardWebhooks(SW_SECRET).verify(BODY, svix, NOW)


def test_standard_webhooks_rotation_accepts_old_and_new_secret() -> None:
    scheme = sig.StandardWebhooks([SW_OTHER, SW_SECRET])
    scheme.verify(BODY, lower(sw_headers(SW_SECRET)), NOW)
    scheme.verify(BODY, lower(sw_headers(SW_OTHER)), NOW)


def test_standard_webhooks_rejects() -> None:
    scheme = sig.StandardWebhooks(SW_SECRET)
    mismatch = MISMATCH["standard-webhooks"]
    rejects(scheme, BODY + b" ", sw_headers(), reason=mismatch)
    rejects(scheme, BODY, sw_headers(SW_OTHER), reason=mismatch)
    # "+301 s from now": signed 301 s ago (stale); "-301 s": signed 301 s ahead of our clock.
    # (NOW has a fraction of a second, the header whole seconds: 301 or 302, 300 or 301.)
    rejects(scheme, BODY, sw_headers(ts=NOW - 301), reason=stale("Standard Webhooks", r"\+30[12]"))
    rejects(scheme, BODY, sw_headers(ts=NOW + 301), reason=stale("Standard Webhooks", "-30[01]"))
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        headers = sw_headers()
        del headers[name]
        rejects(scheme, BODY, headers, reason=f"missing {name} header (Standard Webhooks)")
    rejects(scheme, BODY, {}, reason="missing webhook-id, webhook-timestamp, webhook-signature header (Standard Webhooks)")
    # The id is signed: replaying the body under another id fails.
    headers = sw_headers()
    headers["webhook-id"] = "msg_2"
    rejects(scheme, BODY, headers, reason=mismatch)
    headers = sw_headers()
    headers["webhook-timestamp"] = "soon"
    rejects(scheme, BODY, headers, reason="Standard Webhooks timestamp is not an integer")


def test_standard_webhooks_v1a_ed25519() -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    whpk = "whpk_" + base64.b64encode(public).decode()
    ts = str(int(NOW))
    signature = base64.b64encode(key.sign(f"msg_1.{ts}.".encode() + BODY)).decode()
    headers = {"webhook-id": "msg_1", "webhook-timestamp": ts, "webhook-signature": f"v1a,{signature}"}
    scheme = sig.StandardWebhooks(public_keys=[whpk])
    scheme.verify(BODY, headers, NOW)
    mismatch = MISMATCH["standard-webhooks"]
    rejects(scheme, BODY + b"x", headers, reason=mismatch)
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    other_key = sig.StandardWebhooks(public_keys=["whpk_" + base64.b64encode(other).decode()])
    rejects(other_key, BODY, headers, reason=mismatch)
    # Keys are tried in turn: the right one second still verifies.
    both = sig.StandardWebhooks(public_keys=["whpk_" + base64.b64encode(other).decode(), whpk])
    both.verify(BODY, headers, NOW)
    # A v1a signature is not accepted by a v1-only configuration.
    rejects(sig.StandardWebhooks(SW_SECRET), BODY, headers, reason=mismatch)
    # The last byte of the signature counts.
    flipped = {**headers, "webhook-signature": "v1a," + flip_last_byte(signature, "base64")}
    rejects(scheme, BODY, flipped, reason=mismatch)


# -- Stripe --------------------------------------------------------------------------------------


def stripe_header(secret: str = STRIPE_SECRET, ts: float = NOW, body: bytes = BODY) -> dict[str, str]:
    value = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=int(ts))
    return {"Stripe-Signature": value}


def test_stripe_accepts_the_official_signer() -> None:
    headers = stripe_header()
    event = stripe.Webhook.construct_event(BODY, headers["Stripe-Signature"], STRIPE_SECRET)
    assert event.id == "evt_1"
    sig.Stripe(STRIPE_SECRET).verify(BODY, lower(headers), NOW)


def test_stripe_secret_roll_header_with_two_v1() -> None:
    ts = int(NOW)
    old = stripe.WebhookSignature._compute_signature(f"{ts}.{BODY.decode()}", "whsec_old")
    new = stripe.WebhookSignature._compute_signature(f"{ts}.{BODY.decode()}", STRIPE_SECRET)
    header = {"Stripe-Signature": f"t={ts},v1={old},v1={new},v0=ignored"}
    sig.Stripe([STRIPE_SECRET]).verify(BODY, lower(header), NOW)
    sig.Stripe(["whsec_old"]).verify(BODY, lower(header), NOW)


def test_stripe_rejects() -> None:
    scheme = sig.Stripe([STRIPE_SECRET])
    mismatch = MISMATCH["stripe"]
    rejects(scheme, BODY.replace(b"evt_1", b"evt_2"), stripe_header(), reason=mismatch)
    rejects(scheme, BODY, stripe_header("whsec_wrong"), reason=mismatch)
    rejects(scheme, BODY, stripe_header(ts=NOW - 301), reason=stale("Stripe", r"\+30[12]"))
    rejects(scheme, BODY, {}, reason="missing stripe-signature header (Stripe signature)")
    shape = "Stripe-Signature header has no t= timestamp or no v1= signature"
    rejects(scheme, BODY, {"Stripe-Signature": "v1=abc"}, reason=shape)
    rejects(scheme, BODY, {"Stripe-Signature": f"t={int(NOW)}"}, reason=shape)
    # Only the first "=" separates a key from its value (base64 values may end with "=").
    rejects(scheme, BODY, {"Stripe-Signature": f"t={int(NOW)},v1=ab=cd"}, reason=MISMATCH["stripe"])
    rejects(scheme, BODY, {"Stripe-Signature": "t=notanumber,v1=ab"}, reason="Stripe timestamp is not an integer")


# -- GitHub --------------------------------------------------------------------------------------

GITHUB_DOC_SECRET = "It's a Secret to Everybody"
GITHUB_DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_github_documented_example() -> None:
    # https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
    sig.GitHub(GITHUB_DOC_SECRET).verify(b"Hello, World!", {"x-hub-signature-256": GITHUB_DOC_SIGNATURE}, NOW)


def test_github_rejects() -> None:
    scheme = sig.GitHub(GITHUB_DOC_SECRET)
    headers = {"X-Hub-Signature-256": GITHUB_DOC_SIGNATURE}
    mismatch, shape = MISMATCH["github"], "X-Hub-Signature-256 must look like sha256=<hex>"
    rejects(scheme, b"Hello, World?", headers, reason=mismatch)
    rejects(sig.GitHub("wrong"), b"Hello, World!", headers, reason=mismatch)
    rejects(scheme, b"Hello, World!", {}, reason="missing x-hub-signature-256 header (GitHub signature)")
    rejects(scheme, b"Hello, World!", {"X-Hub-Signature-256": "sha256=ab=c"}, reason=mismatch)
    sha1 = {"X-Hub-Signature-256": GITHUB_DOC_SIGNATURE.replace("sha256", "sha1")}
    rejects(scheme, b"Hello, World!", sha1, reason=shape)
    rejects(scheme, b"Hello, World!", {"X-Hub-Signature-256": "sha256="}, reason=shape)
    rejects(scheme, b"Hello, World!", {"X-Hub-Signature-256": "sha256=\u00e9\u00e9"}, reason=mismatch)


# -- Shopify -------------------------------------------------------------------------------------


def shopify_hmac(secret: bytes, body: bytes) -> str:
    # As in Shopify's docs: Base64(HMAC-SHA256(client_secret, raw body)).
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def test_shopify() -> None:
    scheme = sig.Shopify(["old-secret", "shpss_new"])
    scheme.verify(BODY, {"x-shopify-hmac-sha256": shopify_hmac(b"shpss_new", BODY)}, NOW)
    scheme.verify(BODY, {"x-shopify-hmac-sha256": shopify_hmac(b"old-secret", BODY)}, NOW)
    mismatch = MISMATCH["shopify"]
    rejects(scheme, BODY + b"x", {"X-Shopify-Hmac-Sha256": shopify_hmac(b"shpss_new", BODY)}, reason=mismatch)
    rejects(scheme, BODY, {"X-Shopify-Hmac-Sha256": shopify_hmac(b"wrong", BODY)}, reason=mismatch)
    rejects(scheme, BODY, {"X-Shopify-Hmac-Sha256": "not base64!"}, reason="X-Shopify-Hmac-Sha256 is not base64")
    rejects(scheme, BODY, {}, reason="missing x-shopify-hmac-sha256 header (Shopify signature)")


# -- Slack ---------------------------------------------------------------------------------------

# https://api.slack.com/authentication/verifying-requests-from-slack (the documented walk-through)
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TS = "1531420618"
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIG = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_slack_documented_example() -> None:
    headers = {"x-slack-request-timestamp": SLACK_TS, "x-slack-signature": SLACK_SIG}
    sig.Slack(SLACK_SECRET).verify(SLACK_BODY, headers, float(SLACK_TS) + 10)


def test_slack_rejects() -> None:
    scheme = sig.Slack(SLACK_SECRET)
    headers = {"X-Slack-Request-Timestamp": SLACK_TS, "X-Slack-Signature": SLACK_SIG}
    now = float(SLACK_TS)
    mismatch = MISMATCH["slack"]
    rejects(scheme, SLACK_BODY + b"&x=1", headers, now, reason=mismatch)
    rejects(sig.Slack("wrong"), SLACK_BODY, headers, now, reason=mismatch)
    rejects(scheme, SLACK_BODY, headers, now + 301, reason=stale("Slack", r"\+301"))
    only_ts = {"X-Slack-Request-Timestamp": SLACK_TS}
    rejects(scheme, SLACK_BODY, only_ts, now, reason="missing x-slack-signature header (Slack signature)")
    only_sig = {"X-Slack-Signature": SLACK_SIG}
    rejects(scheme, SLACK_BODY, only_sig, now, reason="missing x-slack-request-timestamp header (Slack signature)")
    bad_ts = {**headers, "X-Slack-Request-Timestamp": "noon"}
    rejects(scheme, SLACK_BODY, bad_ts, now, reason="Slack timestamp is not an integer")
    two_eq = {**headers, "X-Slack-Signature": "v0=ab=cd"}
    rejects(scheme, SLACK_BODY, two_eq, now, reason=mismatch)
    v1 = {**headers, "X-Slack-Signature": SLACK_SIG.replace("v0=", "v1=")}
    rejects(scheme, SLACK_BODY, v1, now, reason="X-Slack-Signature must look like v0=<hex>")


# -- generic HMAC --------------------------------------------------------------------------------


def test_generic_hmac_hex_with_prefix() -> None:
    scheme = sig.HMAC("k1", header="X-Sig", prefix="sha512=", algorithm="sha512")
    good = "sha512=" + hmac.new(b"k1", BODY, hashlib.sha512).hexdigest()
    scheme.verify(BODY, {"x-sig": good}, NOW)
    rejects(scheme, BODY + b"!", {"X-Sig": good}, reason=MISMATCH["hmac"])
    rejects(scheme, BODY, {"X-Sig": good.removeprefix("sha512=")}, reason="x-sig must start with 'sha512='")
    rejects(scheme, BODY, {}, reason="missing x-sig header (HMAC signature)")
    # Hex digests compare case-insensitively (some providers send upper case).
    scheme.verify(BODY, {"x-sig": "sha512=" + good.removeprefix("sha512=").upper()}, NOW)


def test_generic_hmac_base64_with_timestamp_template() -> None:
    scheme = sig.HMAC(
        ["old", "new"], header="X-Sig", encoding="base64", timestamp_header="X-Ts",
        signed_payload="v1:{timestamp}:{body}", timestamp_unit="ms",
    )
    ts = str(int(NOW * 1000))

    def sign(secret: bytes, ts: str) -> str:
        return base64.b64encode(hmac.new(secret, f"v1:{ts}:".encode() + BODY, hashlib.sha256).digest()).decode()

    scheme.verify(BODY, {"x-sig": sign(b"new", ts), "x-ts": ts}, NOW)
    scheme.verify(BODY, {"x-sig": sign(b"old", ts), "x-ts": ts}, NOW)
    old = str(int((NOW - 400) * 1000))
    rejects(scheme, BODY, {"X-Sig": sign(b"new", old), "X-Ts": old}, reason=stale("HMAC", r"\+400"))
    rejects(scheme, BODY, {"X-Sig": sign(b"new", ts)}, reason="missing x-ts header (HMAC signature)")
    rejects(scheme, BODY, {"X-Sig": sign(b"wrong", ts), "X-Ts": ts}, reason=MISMATCH["hmac"])
    rejects(scheme, BODY, {"X-Sig": "***", "X-Ts": ts}, reason="x-sig is not base64")
    # The timestamp is signed: the same signature under another timestamp fails.
    later = str(int(NOW * 1000) + 1)
    rejects(scheme, BODY, {"X-Sig": sign(b"new", ts), "X-Ts": later}, reason=MISMATCH["hmac"])


def test_bad_configuration_is_refused_at_construction() -> None:
    with pytest.raises(ConfigError):
        sig.Stripe([])
    with pytest.raises(ConfigError):
        sig.GitHub([""])
    with pytest.raises(ConfigError):
        sig.HMAC("k", algorithm="md5")
    with pytest.raises(ConfigError):
        sig.HMAC("k", signed_payload="{body}.{timestamp}")
    with pytest.raises(ConfigError):
        sig.StandardWebhooks("whsec_***not-base64***")
    with pytest.raises(ConfigError):
        sig.Slack("k", tolerance=0)


def test_secrets_never_appear_in_repr_or_errors() -> None:
    secret = "whsec_super_secret_value_123"
    schemes = [
        sig.Stripe(secret), sig.GitHub(secret), sig.Shopify(secret), sig.Slack(secret),
        sig.HMAC(secret, header="X-Sig"), sig.StandardWebhooks(SW_SECRET),
    ]
    for scheme in schemes:
        assert secret not in repr(scheme)
        assert SW_SECRET not in repr(scheme)
        messages = [rejects(scheme, BODY, {}, reason=re.compile(r"missing .* header \(.*\)"))]
        for header in ("stripe-signature", "x-hub-signature-256", "x-shopify-hmac-sha256", "x-sig"):
            try:
                scheme.verify(BODY, {header: "t=1,v1=00", "x-slack-request-timestamp": str(int(NOW))}, NOW)
            except SignatureInvalid as exc:
                messages.append(str(exc))
        for message in messages:
            assert secret not in message
            assert "super_secret" not in message


# -- every scheme: the whole signature counts -----------------------------------------------------


def genuine() -> list[tuple[sig.SignatureScheme, bytes, dict[str, str], float, str, str, str]]:
    """Per scheme: (scheme, body, headers with a valid signature, now, the signature header, its
    text before the digest, the digest's encoding). The digest is the header's last part."""
    ts = str(int(NOW))
    stripe_v1 = stripe.WebhookSignature._compute_signature(f"{ts}.{BODY.decode()}", STRIPE_SECRET)
    sw = sw_headers()
    slack_body = SLACK_BODY
    hmac_hex = hmac.new(b"k1", BODY, hashlib.sha512).hexdigest()
    ts_ms = str(int(NOW * 1000))
    hmac_b64 = base64.b64encode(hmac.new(b"new", f"{ts_ms}.".encode() + BODY, hashlib.sha256).digest()).decode()
    return [
        (sig.StandardWebhooks(SW_SECRET), BODY, sw, NOW, "webhook-signature", "v1,", "base64"),
        (sig.Stripe(STRIPE_SECRET), BODY, {"stripe-signature": f"t={ts},v1={stripe_v1}"}, NOW,
         "stripe-signature", f"t={ts},v1=", "hex"),
        (sig.GitHub(GITHUB_DOC_SECRET), b"Hello, World!", {"x-hub-signature-256": GITHUB_DOC_SIGNATURE}, NOW,
         "x-hub-signature-256", "sha256=", "hex"),
        (sig.Shopify("shpss_new"), BODY, {"x-shopify-hmac-sha256": shopify_hmac(b"shpss_new", BODY)}, NOW,
         "x-shopify-hmac-sha256", "", "base64"),
        (sig.Slack(SLACK_SECRET), slack_body, {"x-slack-request-timestamp": SLACK_TS, "x-slack-signature": SLACK_SIG},
         float(SLACK_TS), "x-slack-signature", "v0=", "hex"),
        (sig.HMAC("k1", header="X-Sig", prefix="sha512=", algorithm="sha512"), BODY, {"x-sig": "sha512=" + hmac_hex},
         NOW, "x-sig", "sha512=", "hex"),
        (sig.HMAC(["old", "new"], header="X-Sig", encoding="base64", timestamp_header="X-Ts", timestamp_unit="ms"),
         BODY, {"x-sig": hmac_b64, "x-ts": ts_ms}, NOW, "x-sig", "", "base64"),
    ]


@pytest.mark.parametrize("case", range(len(genuine())), ids=lambda i: f"{genuine()[i][0].name}-{i}")
def test_a_signature_with_its_last_byte_changed_or_cut_off_is_refused(case: int) -> None:
    scheme, body, headers, now, name, prefix, encoding = genuine()[case]
    scheme.verify(body, headers, now)  # genuine: accepted
    digest = headers[name].removeprefix(prefix)
    reason = MISMATCH[scheme.name]
    for changed in (flip_last_byte(digest, encoding), drop_last_byte(digest, encoding)):
        rejects(scheme, body, {**headers, name: prefix + changed}, now, reason=reason)


# -- configuration refusals, exactly (from the mutation run of issue #19) -----------------------

CONFIG_ERRORS: list[tuple[Callable[[], object], str]] = [
    (lambda: sig.Stripe([]), "Stripe.secrets: give at least one non-empty secret"),
    (lambda: sig.GitHub([""]), "GitHub.secrets: give at least one non-empty secret"),
    (lambda: sig.Shopify(b""), "Shopify.secrets: give at least one non-empty secret"),
    (lambda: sig.Slack("k", tolerance=0), "Slack.tolerance: must be > 0 seconds, got 0"),
    (lambda: sig.Stripe("k", tolerance=-1), "Stripe.tolerance: must be > 0 seconds, got -1"),
    (lambda: sig.HMAC("k", header=""), "HMAC.header: name the header that carries the signature"),
    (lambda: sig.HMAC("k", algorithm="md5"),
     "HMAC.algorithm: must be one of ['sha1', 'sha256', 'sha384', 'sha512'], got 'md5'"),
    (lambda: sig.HMAC("k", encoding="base32"),  # type: ignore[arg-type]
     "HMAC.encoding: must be 'hex' or 'base64', got 'base32'"),
    (lambda: sig.HMAC("k", signed_payload="{body}.{timestamp}", timestamp_header="X-Ts"),
     "HMAC.signed_payload: must end with a single {body}, got '{body}.{timestamp}'"),
    (lambda: sig.HMAC("k", signed_payload="{body}{body}"),
     "HMAC.signed_payload: must end with a single {body}, got '{body}{body}'"),
    (lambda: sig.HMAC("k", signed_payload="{timestamp}.{body}"),
     "HMAC.signed_payload: uses {timestamp} but no timestamp_header is set"),
    (lambda: sig.HMAC("k", signed_payload="{id}.{body}"), "HMAC.signed_payload: uses {id} but no id_header is set"),
    (lambda: sig.HMAC("k", tolerance=0), "HMAC.tolerance: must be > 0 seconds, got 0"),
    (lambda: sig.HMAC("k", timestamp_header="X-Ts", timestamp_unit="us"),  # type: ignore[arg-type]
     "HMAC.timestamp_unit: must be 's' or 'ms', got 'us'"),
    (lambda: sig.StandardWebhooks("whsec_***"),
     "StandardWebhooks.secrets: expected whsec_<base64>; the value is not base64"),
    (lambda: sig.StandardWebhooks("whsec_"), "StandardWebhooks.secrets: decodes to an empty key"),
    (lambda: sig.StandardWebhooks(public_keys=["whpk_***"]),
     "StandardWebhooks.public_keys: expected whpk_<base64>; the value is not base64"),
    (lambda: sig.StandardWebhooks(), "StandardWebhooks.secrets: give whsec_ secrets (v1) or whpk_ public keys (v1a)"),
    (lambda: sig.StandardWebhooks(SW_SECRET, tolerance=0), "StandardWebhooks.tolerance: must be > 0 seconds, got 0"),
]


@pytest.mark.parametrize(("make", "message"), CONFIG_ERRORS, ids=[m for _, m in CONFIG_ERRORS])
def test_configuration_refusals_say_exactly_what_is_wrong(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make()
    assert str(caught.value) == message


def test_configuration_defaults_and_edges() -> None:
    scheme = sig.HMAC("k")
    assert (scheme.header, scheme.algorithm, scheme.encoding, scheme.tolerance) == ("x-signature", "sha256", "hex", 300.0)
    assert sig.HMAC("k", algorithm="SHA-512").algorithm == "sha512"
    assert sig.Slack("k", tolerance=0.5).tolerance == 0.5  # any positive tolerance
    assert repr(sig.Slack(["a", "b"], tolerance=60)) == "Slack(secrets=<2 hidden>, tolerance=60.0)"
    assert repr(sig.GitHub("a")) == "GitHub(secrets=<1 hidden>)"
    assert sig.GitHub(b"raw-bytes")._keys == (b"raw-bytes",)
    # Each scheme names itself and where its deliveries keep their id and type.
    assert (sig.GitHub.name, sig.GitHub.id_header, sig.GitHub.type_header) == (
        "github", "x-github-delivery", "x-github-event"
    )
    assert (sig.Stripe.name, sig.Stripe.id_path, sig.Stripe.type_path) == ("stripe", "$.id", "$.type")
    assert (sig.Shopify.id_header, sig.Shopify.type_header) == ("x-shopify-webhook-id", "x-shopify-topic")
    assert (sig.Slack.id_path, sig.Slack.type_path) == ("$.event_id", "$.event.type")
    # Unpadded base64 secrets (as some dashboards show them) are accepted.
    unpadded = SW_SECRET.rstrip("=")
    sig.StandardWebhooks(unpadded).verify(BODY, lower(sw_headers()), NOW)


def test_hmac_template_with_the_delivery_id_signed() -> None:
    scheme = sig.HMAC("k", header="X-Sig", id_header="X-Id", signed_payload="{id}:{body}")
    good = hmac.new(b"k", b"d-1:" + BODY, hashlib.sha256).hexdigest()
    scheme.verify(BODY, {"x-sig": good, "x-id": "d-1"}, NOW)
    rejects(scheme, BODY, {"X-Sig": good, "X-Id": "d-2"}, reason="x-sig does not match the configured secrets")
    rejects(scheme, BODY, {"X-Sig": good}, reason="missing x-id header (HMAC signature)")
    # An id header the template does not use is not required.
    plain = sig.HMAC("k", header="X-Sig", id_header="X-Id")
    plain.verify(BODY, {"x-sig": hmac.new(b"k", BODY, hashlib.sha256).hexdigest()}, NOW)


def test_a_timestamp_exactly_at_the_tolerance_is_accepted() -> None:
    ts = 1_767_225_600
    header = f"t={ts},v1=" + stripe.WebhookSignature._compute_signature(f"{ts}.{BODY.decode()}", STRIPE_SECRET)
    sig.Stripe(STRIPE_SECRET).verify(BODY, {"stripe-signature": header}, ts + 300.0)
    rejects(sig.Stripe(STRIPE_SECRET), BODY, {"Stripe-Signature": header}, ts + 300.5, reason=stale("Stripe", r"\+300"))


def test_standard_webhooks_skips_a_malformed_signature_and_checks_the_next() -> None:
    h = sw_headers()
    listed = f"v1,***notbase64*** v2,{base64.b64encode(b'x').decode()} {h['webhook-signature']}"
    sig.StandardWebhooks(SW_SECRET).verify(BODY, {**lower(h), "webhook-signature": listed}, NOW)


def test_hmac_attributes_units_and_algorithms() -> None:
    scheme = sig.HMAC(
        "k", header="X-Sig", timestamp_header="X-Ts", id_header="X-Id", id_path="$.id",
        type_header="X-Type", type_path="$.type",
    )
    assert (scheme.id_header, scheme.id_path, scheme.type_header, scheme.type_path) == ("x-id", "$.id", "x-type", "$.type")
    ts = str(int(NOW))  # seconds, the default unit
    scheme.verify(BODY, {"x-sig": hmac.new(b"k", f"{ts}.".encode() + BODY, hashlib.sha256).hexdigest(), "x-ts": ts}, NOW)
    sha512 = sig.HMAC("k", header="X-Sig", encoding="base64", algorithm="sha512")
    sha512.verify(BODY, {"x-sig": base64.b64encode(hmac.new(b"k", BODY, hashlib.sha512).digest()).decode()}, NOW)
    sha256 = base64.b64encode(hmac.new(b"k", BODY, hashlib.sha256).digest()).decode()
    rejects(sha512, BODY, {"X-Sig": sha256}, reason="x-sig does not match the configured secrets")


def test_standard_webhooks_refuses_junk_inside_a_signature_and_tries_every_v1a() -> None:
    h = sw_headers()
    version, _, value = h["webhook-signature"].partition(",")
    spliced = {**h, "webhook-signature": f"{version},{value[:10]}*{value[10:]}"}
    rejects(sig.StandardWebhooks(SW_SECRET), BODY, spliced, reason=MISMATCH["standard-webhooks"])
    key = Ed25519PrivateKey.generate()
    whpk = "whpk_" + base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    ts = str(int(NOW))
    good = base64.b64encode(key.sign(f"msg_1.{ts}.".encode() + BODY)).decode()
    wrong = base64.b64encode(bytes(64)).decode()
    both = {"webhook-id": "msg_1", "webhook-timestamp": ts, "webhook-signature": f"v1a,{wrong} v1a,{good}"}
    sig.StandardWebhooks(public_keys=[whpk]).verify(BODY, both, NOW)
