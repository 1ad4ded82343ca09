"""Connections go to the vetted address; Host, SNI and the certificate check use the name."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.webhooks.receivers import Answer, Receiver, in_turn
from tests.webhooks.support import FakeDns
from wacrm.webhooks.signing import new_secret, signature_headers
from wacrm.webhooks.transport import WebhookSender, parse_retry_after

NAME = "hooks.customer.test"


def _certificate(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext, list[str]]:
    """A server context for ``name``, a client context trusting it, and the SNI names seen."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    seen: list[str] = []
    server.sni_callback = lambda _sock, server_name, _ctx: seen.append(server_name)  # type: ignore[assignment,misc,return-value]
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client, seen


def _sender(dns: FakeDns, client: ssl.SSLContext | None = None) -> WebhookSender:
    return WebhookSender(
        allow_private=True, timeout=2, max_connections=4, resolver=dns, ssl_context=client
    )


def _signed(body: bytes) -> dict[str, str]:
    return signature_headers(new_secret(), message_id="evt_1", timestamp=1, body=body)


async def test_https_goes_to_the_vetted_address_with_the_real_name(tmp_path):
    server, client, sni = _certificate(tmp_path, NAME)
    dns = FakeDns({NAME: ["127.0.0.1"]})
    async with Receiver(ssl_context=server) as receiver:
        sender = _sender(dns, client)
        url = f"https://{NAME}:{receiver.port}/hook"
        for _ in range(2):  # the second reuses the pooled connection; still resolved first
            result = await sender.post(url, _signed(b"{}"), b"{}")
            assert result.succeeded, result.error
        await sender.aclose()
    assert sni == [NAME]  # one TLS handshake, for the name, not the address
    assert {r.headers["host"] for r in receiver.received} == {f"{NAME}:{receiver.port}"}
    assert receiver.peers == {"127.0.0.1"}
    assert dns.lookups == [NAME, NAME]


async def test_tls_still_checks_the_certificate_against_the_name(tmp_path):
    server, client, _ = _certificate(tmp_path, NAME)
    dns = FakeDns({"impostor.test": ["127.0.0.1"]})
    async with Receiver(ssl_context=server) as receiver:
        sender = _sender(dns, client)
        result = await sender.post(f"https://impostor.test:{receiver.port}/hook", {}, b"{}")
        await sender.aclose()
    assert not result.succeeded and receiver.received == []
    assert result.error and result.error.startswith("could not connect")
    assert "certificate" in result.error.lower() or "hostname" in result.error.lower()


async def test_every_vetted_address_is_tried_in_turn_and_no_other():
    dns = FakeDns({"two.test": ["127.0.0.2", "127.0.0.1"]})  # 127.0.0.2: nobody listens
    async with Receiver() as receiver:
        sender = _sender(dns)
        result = await sender.post(f"http://two.test:{receiver.port}/hook", {}, b"{}")
        await sender.aclose()
    assert result.succeeded, result.error
    assert receiver.peers == {"127.0.0.1"}


async def test_connections_are_kept_alive_per_name_never_shared_between_names():
    dns = FakeDns({"a.test": ["127.0.0.1"], "b.test": ["127.0.0.1"]})
    async with Receiver() as receiver:
        sender = _sender(dns)
        for name in ("a.test", "a.test", "b.test", "a.test", "b.test"):
            result = await sender.post(f"http://{name}:{receiver.port}/hook", {}, b"{}")
            assert result.succeeded, result.error
        await sender.aclose()
    assert receiver.connections == 2  # one per name, each reused
    hosts = [r.headers["host"].split(":")[0] for r in receiver.received]
    assert hosts == ["a.test", "a.test", "b.test", "a.test", "b.test"]


async def test_a_keep_alive_connection_closed_by_the_receiver_is_replaced():
    async with Receiver(in_turn(Answer(behaviour="close"), Answer())) as receiver:
        sender = _sender(FakeDns())
        for _ in range(3):
            result = await sender.post(receiver.url, {}, b"{}")
            assert result.succeeded, result.error
        await sender.aclose()
    assert receiver.connections == 2


async def test_unsafe_urls_are_blocked_before_any_connection():
    dns = FakeDns()
    sender = WebhookSender(allow_private=False, timeout=1, max_connections=1, resolver=dns)
    for url in ("http://example.com/h", "https://127.0.0.1/h", "https://u:p@example.com/h"):
        result = await sender.post(url, {}, b"{}")
        assert not result.succeeded and result.error and result.error.startswith("blocked: ")
    await sender.aclose()
    assert dns.lookups == []


def test_retry_after_parsing():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(format_datetime(now + timedelta(minutes=2), usegmt=True), now) == 120
    assert parse_retry_after(format_datetime(now - timedelta(minutes=2), usegmt=True), now) == 0
    for junk in (None, "", "-5", "soon", "1e9", "12 seconds"):
        assert parse_retry_after(junk, now) is None
