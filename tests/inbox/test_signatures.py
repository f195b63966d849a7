"""Every scheme accepts genuine signatures (from the providers' own libraries or documented
examples) and refuses tampered bodies, wrong secrets, stale timestamps and missing headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
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


def rejects(scheme: sig.SignatureScheme, body: bytes, headers: dict[str, str], now: float = NOW) -> str:
    with pytest.raises(SignatureInvalid) as info:
        scheme.verify(body, lower(headers), now)
    return str(info.value)


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
    assert "no webhook-signature matches" in rejects(scheme, BODY + b" ", sw_headers())
    assert "no webhook-signature matches" in rejects(scheme, BODY, sw_headers(SW_OTHER))
    assert "tolerance" in rejects(scheme, BODY, sw_headers(ts=NOW - 301))
    assert "tolerance" in rejects(scheme, BODY, sw_headers(ts=NOW + 301))
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        headers = sw_headers()
        del headers[name]
        assert f"missing {name}" in rejects(scheme, BODY, headers)
    # The id is signed: replaying the body under another id fails.
    headers = sw_headers()
    headers["webhook-id"] = "msg_2"
    rejects(scheme, BODY, headers)


def test_standard_webhooks_v1a_ed25519() -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    whpk = "whpk_" + base64.b64encode(public).decode()
    ts = str(int(NOW))
    signature = base64.b64encode(key.sign(f"msg_1.{ts}.".encode() + BODY)).decode()
    headers = {"webhook-id": "msg_1", "webhook-timestamp": ts, "webhook-signature": f"v1a,{signature}"}
    scheme = sig.StandardWebhooks(public_keys=[whpk])
    scheme.verify(BODY, headers, NOW)
    rejects(scheme, BODY + b"x", headers)
    other = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    rejects(sig.StandardWebhooks(public_keys=["whpk_" + base64.b64encode(other).decode()]), BODY, headers)
    # A v1a signature is not accepted by a v1-only configuration.
    rejects(sig.StandardWebhooks(SW_SECRET), BODY, headers)


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
    rejects(scheme, BODY.replace(b"evt_1", b"evt_2"), stripe_header())
    rejects(scheme, BODY, stripe_header("whsec_wrong"))
    assert "tolerance" in rejects(scheme, BODY, stripe_header(ts=NOW - 301))
    assert "missing stripe-signature" in rejects(scheme, BODY, {})
    assert "no t=" in rejects(scheme, BODY, {"Stripe-Signature": "v1=abc"})
    assert "no t=" in rejects(scheme, BODY, {"Stripe-Signature": f"t={int(NOW)}"})
    rejects(scheme, BODY, {"Stripe-Signature": "t=notanumber,v1=ab"})


# -- GitHub --------------------------------------------------------------------------------------

GITHUB_DOC_SECRET = "It's a Secret to Everybody"
GITHUB_DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_github_documented_example() -> None:
    # https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
    sig.GitHub(GITHUB_DOC_SECRET).verify(b"Hello, World!", {"x-hub-signature-256": GITHUB_DOC_SIGNATURE}, NOW)


def test_github_rejects() -> None:
    scheme = sig.GitHub(GITHUB_DOC_SECRET)
    headers = {"X-Hub-Signature-256": GITHUB_DOC_SIGNATURE}
    rejects(scheme, b"Hello, World?", headers)
    rejects(sig.GitHub("wrong"), b"Hello, World!", headers)
    assert "missing x-hub-signature-256" in rejects(scheme, b"Hello, World!", {})
    rejects(scheme, b"Hello, World!", {"X-Hub-Signature-256": GITHUB_DOC_SIGNATURE.replace("sha256", "sha1")})
    rejects(scheme, b"Hello, World!", {"X-Hub-Signature-256": "sha256=\u00e9\u00e9"})


# -- Shopify -------------------------------------------------------------------------------------


def shopify_hmac(secret: bytes, body: bytes) -> str:
    # As in Shopify's docs: Base64(HMAC-SHA256(client_secret, raw body)).
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def test_shopify() -> None:
    scheme = sig.Shopify(["old-secret", "shpss_new"])
    scheme.verify(BODY, {"x-shopify-hmac-sha256": shopify_hmac(b"shpss_new", BODY)}, NOW)
    scheme.verify(BODY, {"x-shopify-hmac-sha256": shopify_hmac(b"old-secret", BODY)}, NOW)
    rejects(scheme, BODY + b"x", {"X-Shopify-Hmac-Sha256": shopify_hmac(b"shpss_new", BODY)})
    rejects(scheme, BODY, {"X-Shopify-Hmac-Sha256": shopify_hmac(b"wrong", BODY)})
    rejects(scheme, BODY, {"X-Shopify-Hmac-Sha256": "not base64!"})
    assert "missing x-shopify-hmac-sha256" in rejects(scheme, BODY, {})


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
    rejects(scheme, SLACK_BODY + b"&x=1", headers, now)
    rejects(sig.Slack("wrong"), SLACK_BODY, headers, now)
    assert "tolerance" in rejects(scheme, SLACK_BODY, headers, now + 301)
    assert "missing x-slack-signature" in rejects(scheme, SLACK_BODY, {"X-Slack-Request-Timestamp": SLACK_TS}, now)
    assert "missing x-slack-request-timestamp" in rejects(scheme, SLACK_BODY, {"X-Slack-Signature": SLACK_SIG}, now)


# -- generic HMAC --------------------------------------------------------------------------------


def test_generic_hmac_hex_with_prefix() -> None:
    scheme = sig.HMAC("k1", header="X-Sig", prefix="sha512=", algorithm="sha512")
    good = "sha512=" + hmac.new(b"k1", BODY, hashlib.sha512).hexdigest()
    scheme.verify(BODY, {"x-sig": good}, NOW)
    rejects(scheme, BODY + b"!", {"X-Sig": good})
    rejects(scheme, BODY, {"X-Sig": good.removeprefix("sha512=")})
    rejects(scheme, BODY, {})


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
    stale = str(int((NOW - 400) * 1000))
    assert "tolerance" in rejects(scheme, BODY, {"X-Sig": sign(b"new", stale), "X-Ts": stale})
    rejects(scheme, BODY, {"X-Sig": sign(b"new", ts)})  # timestamp header missing
    rejects(scheme, BODY, {"X-Sig": sign(b"wrong", ts), "X-Ts": ts})


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
        messages = [rejects(scheme, BODY, {})]
        for header in ("stripe-signature", "x-hub-signature-256", "x-shopify-hmac-sha256", "x-sig"):
            try:
                scheme.verify(BODY, {header: "t=1,v1=00", "x-slack-request-timestamp": str(int(NOW))}, NOW)
            except SignatureInvalid as exc:
                messages.append(str(exc))
        for message in messages:
            assert secret not in message
            assert "super_secret" not in message
