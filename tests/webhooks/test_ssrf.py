import ipaddress
import socket
from typing import Any

import pytest

from wacrm.webhooks.ssrf import (
    MAX_URL_LENGTH,
    UnsafeWebhookUrl,
    is_globally_routable,
    normalise_webhook_url,
    resolve_public_addresses,
)


def ipv4_spellings(dotted: str) -> list[str]:
    """Every way the WHATWG host parser (and inet_aton) lets you write one IPv4 address."""
    a, b, c, d = (int(part) for part in dotted.split("."))
    n = int(ipaddress.IPv4Address(dotted))
    return [
        dotted,
        str(n),  # 2130706433
        f"0{n:o}",  # 017700000001
        hex(n),  # 0x7f000001
        f"0X{n:X}",  # upper-case hex
        ".".join(f"0{x:o}" for x in (a, b, c, d)),  # 0177.00.00.01
        ".".join(hex(x) for x in (a, b, c, d)),  # 0x7f.0x0.0x0.0x1
        f"{a}.{(b << 16) | (c << 8) | d}",  # 127.1
        f"{a}.{b}.{(c << 8) | d}",  # 127.0.1
        f"0x{a:x}.{b}.0{c:o}.{d}",  # mixed
        f"0{a:o}.0x{(b << 16) | (c << 8) | d:x}",  # mixed short form
        f"{a}.0x.{c}.{d}" if b == 0 else f"{a}.{b}.{c}.{d}",  # bare "0x" is zero
    ]


PRIVATE_IPV4 = ["127.0.0.1", "10.0.0.1", "169.254.169.254", "0.0.0.0"]
ODD_SPELLINGS = [
    (spelling, dotted) for dotted in PRIVATE_IPV4 for spelling in ipv4_spellings(dotted)
] + [
    ("0177.0.0.1", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("0", "0.0.0.0"),
    ("0x", "0.0.0.0"),
    ("0xA9.0xFE.0xA9.0xFE", "169.254.169.254"),
]


@pytest.mark.parametrize(("spelling", "dotted"), ODD_SPELLINGS)
def test_odd_ipv4_spellings_are_refused(spelling: str, dotted: str) -> None:
    with pytest.raises(UnsafeWebhookUrl, match="not a public address"):
        normalise_webhook_url(f"https://{spelling}/h")


@pytest.mark.parametrize(("spelling", "dotted"), ODD_SPELLINGS)
def test_odd_ipv4_spellings_are_recognised_as_that_address(spelling: str, dotted: str) -> None:
    assert normalise_webhook_url(f"https://{spelling}/h", allow_private=True) == (
        f"https://{dotted}/h"
    )


@pytest.mark.parametrize("spelling", ipv4_spellings("8.8.8.8"))
def test_odd_spellings_of_a_public_ipv4_are_accepted_in_canonical_form(spelling: str) -> None:
    assert normalise_webhook_url(f"https://{spelling}/x") == "https://8.8.8.8/x"


@pytest.mark.parametrize(
    "host",
    [
        "1.2.3.4.5",  # more than four parts
        "256.0.0.1",
        "1.2.3.256",
        "1.16777216",
        "4294967296",
        "09.0.0.1",  # 9 is not an octal digit
        "0x1g.0.0.1",
        "example.123",  # ends in a number, so it must be an IPv4 address
        "example.0x1f",
        "foo.0x",
        "1.-2.3.4",
        "1._2.3.4",
        "127.0.0.1.",  # empty label
        "127..1",
    ],
)
def test_hosts_ending_in_a_number_that_are_not_ipv4_are_refused(host: str) -> None:
    with pytest.raises(UnsafeWebhookUrl):
        normalise_webhook_url(f"https://{host}/h", allow_private=True)


@pytest.mark.parametrize("host", ["0xg.example.com", "1.example", "example.0x1g", "a_b.example"])
def test_names_with_numeric_looking_labels_are_names(host: str) -> None:
    assert normalise_webhook_url(f"https://{host}/h") == f"https://{host}/h"


@pytest.mark.parametrize(
    "url",
    [
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:7f00:1]/",
        "https://[::ffff:a9fe:a9fe]/",
        "https://[::127.0.0.1]/",
        "https://[::8.8.8.8]/",  # deprecated IPv4-compatible form: never routed as IPv4
        "https://[64:ff9b::a00:1]/",
        "https://[64:ff9b:1::a00:1]/",
        "https://[2002:7f00:1::]/",
        "https://[2002:a9fe:a9fe::1]/",
        "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo, client 127.0.0.1
        "https://[fd00::1]/",
        "https://[fe80::1]/",
        "https://[::1]/",
        "https://[::]/",
        "https://[ff02::1]/",
        "https://[2001:db8::1]/",
    ],
)
def test_private_ipv6_literals_are_refused(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl, match="not a public address"):
        normalise_webhook_url(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://[2606:4700:4700::1111]/h", "https://[2606:4700:4700::1111]/h"),
        ("https://[2606:4700:4700:0:0:0:0:1111]:8443/h", "https://[2606:4700:4700::1111]:8443/h"),
        ("https://[2606:4700:4700::ABCD]/h", "https://[2606:4700:4700::abcd]/h"),
        ("https://[::ffff:8.8.8.8]/h", "https://[::ffff:808:808]/h"),
        ("https://[64:ff9b::8.8.8.8]/h", "https://[64:ff9b::808:808]/h"),
        ("https://[2002:808:808::1]/h", "https://[2002:808:808::1]/h"),
    ],
)
def test_public_ipv6_literals_are_accepted(url: str, expected: str) -> None:
    assert normalise_webhook_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://[fe80::1%25eth0]/",
        "https://[fe80::1%eth0]/",
        "https://[2606:4700:4700::1111%251]/",
        "https://[::1/",
        "https://[]/",
        "https://[example.com]/",
        "https://[::1]x/",
        "https://::1/",
    ],
)
def test_malformed_ipv6_and_zone_ids_are_refused(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl):
        normalise_webhook_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pw@example.com/h",
        "https://user@example.com/h",
        "https://@example.com/h",
        "https://:@example.com/h",
        "https://example.com@8.8.8.8/h",
    ],
)
def test_userinfo_is_refused(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl, match="credentials"):
        normalise_webhook_url(url, allow_private=True)


def test_at_sign_in_the_path_is_not_userinfo() -> None:
    assert normalise_webhook_url("https://example.com/a@b") == "https://example.com/a@b"


@pytest.mark.parametrize(
    "url",
    [
        " https://example.com/h",
        "https://example.com/h ",
        "https://example.com/h\n",
        "\thttps://example.com/h",
        "https://exam\tple.com/h",
        "https://example.com/\th",
        "https://exa\nmple.com/h",
        "https://example.com/h\r\nX-Injected: 1",
        "https://exa mple.com/h",
        "https://example.com/a b",
        "https://example.com/h\x00",
        "https://example.com/h\x7f",
        "https://example.com/h\x85",
        "https://example.com/h\u00a0",
        "https://example.com\u3000/h",
    ],
)
def test_whitespace_and_control_characters_are_refused(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl, match=r"whitespace|control"):
        normalise_webhook_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8443\\@example.com/h",
        "https:\\\\example.com/h",
        "https://example.com\\h",
        "https://example.com/a\\b",
    ],
)
def test_backslash_is_refused(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl, match="backslash"):
        normalise_webhook_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/\udcff",  # lone surrogate: not encodable as UTF-8
        "https://exa\ud800mple.com/",
    ],
)
def test_text_that_is_not_utf8_is_refused(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl, match="UTF-8"):
        normalise_webhook_url(url)


def test_non_ascii_path_must_be_percent_encoded() -> None:
    with pytest.raises(UnsafeWebhookUrl, match="percent-encoded"):
        normalise_webhook_url("https://example.com/caf\u00e9")
    assert normalise_webhook_url("https://example.com/caf%C3%A9") == (
        "https://example.com/caf%C3%A9"
    )


def test_http_needs_allow_private() -> None:
    with pytest.raises(UnsafeWebhookUrl, match="scheme must be https"):
        normalise_webhook_url("http://example.com/h")
    assert normalise_webhook_url("HTTP://example.com/h", allow_private=True) == (
        "http://example.com/h"
    )


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/h",
        "file:///etc/passwd",
        "gopher://example.com/",
        "ws://example.com/h",
        "javascript:alert(1)",
        "example.com/h",
        "//example.com/h",
        "://example.com/h",
        "1https://example.com/h",
    ],
)
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl):
        normalise_webhook_url(url, allow_private=True)


def test_length_limit() -> None:
    prefix = "https://example.com/"
    longest = prefix + "a" * (MAX_URL_LENGTH - len(prefix))
    assert normalise_webhook_url(longest) == longest
    with pytest.raises(UnsafeWebhookUrl, match="longer than 2048"):
        normalise_webhook_url(longest + "a")


def test_error_messages_do_not_echo_long_input() -> None:
    host = "x" * 500 + ".123"
    with pytest.raises(UnsafeWebhookUrl) as caught:
        normalise_webhook_url(f"https://{host}/h")
    assert "x" * 101 not in str(caught.value)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Example.com/h", "https://example.com/h"),
        ("https://EXAMPLE.COM/Path?Q=A", "https://example.com/Path?Q=A"),
        ("https://example.com", "https://example.com/"),
        ("https://example.com?x=1", "https://example.com/?x=1"),
        ("https://example.com:443/h", "https://example.com/h"),
        ("https://example.com:0443/h", "https://example.com/h"),
        ("https://example.com:8443/h", "https://example.com:8443/h"),
        ("https://example.com:1/h", "https://example.com:1/h"),
        ("https://example.com:65535/h", "https://example.com:65535/h"),
        ("https://B\u00fccher.example/h", "https://xn--bcher-kva.example/h"),
        ("https://xn--bcher-kva.example/h", "https://xn--bcher-kva.example/h"),
        ("https://8.8.8.8/x", "https://8.8.8.8/x"),
    ],
)
def test_canonical_form(url: str, expected: str) -> None:
    assert normalise_webhook_url(url) == expected


def test_http_default_port_is_dropped() -> None:
    assert normalise_webhook_url("http://localhost:80/h", allow_private=True) == (
        "http://localhost/h"
    )
    assert normalise_webhook_url("http://localhost:8000/h", allow_private=True) == (
        "http://localhost:8000/h"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com:0/h",
        "https://example.com:65536/h",
        "https://example.com:/h",
        "https://example.com:abc/h",
        "https://example.com:+443/h",
        "https://example.com:4_43/h",
        "https://example.com:\u0664\u0664\u0663/h",  # Arabic-Indic digits
        "https://example.com:1:2/h",
    ],
)
def test_bad_ports_are_refused(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl, match="port"):
        normalise_webhook_url(url)


@pytest.mark.parametrize("url", ["https://example.com/h#frag", "https://example.com/h#"])
def test_fragments_are_refused(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl, match="fragment"):
        normalise_webhook_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https:///h",
        "https://:443/h",
        "https://?x",
        "https:example.com/h",
        "https:/example.com/h",
        "https://%31%32%37.0.0.1/h",
        "https://exa%6dple.com/h",
        "https://exa<mple.com/h",
        "https://-." + "a" * 64 + ".com/h",
        "https://" + ".".join(["a" * 60] * 5) + "/h",
        "https://exa\u00admple.com/h",  # soft hyphen, silently dropped by IDNA
        "https://\uff11\uff12\uff17.0.0.1/h",  # full-width digits, mapped to 127 by IDNA
        "https://example\u3002com/h",  # ideographic full stop, mapped to "." by IDNA
        "https://stra\u00dfe.de/h",  # IDNA 2003 would rewrite it to strasse.de
    ],
)
def test_malformed_hosts_are_refused(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl):
        normalise_webhook_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url", ["https://localhost/h", "https://LOCALHOST:8443/h", "https://api.localhost/h"]
)
def test_localhost_is_refused_unless_private_allowed(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl, match="not a public host"):
        normalise_webhook_url(url)
    assert normalise_webhook_url(url, allow_private=True).startswith("https://")


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "0.1.2.3",
        "255.255.255.255",
        "224.0.0.1",  # is_global says True
        "239.255.255.250",  # is_global says True
        "240.0.0.1",
        "192.0.0.9",
        "192.0.2.1",
        "198.51.100.1",
        "203.0.113.1",
        "198.18.0.1",
        "198.19.255.255",
        "::1",
        "::",
        "fd00::1",
        "fc00::1",
        "fe80::1",
        "fec0::1",  # deprecated site-local; is_global says True
        "ff02::1",  # is_global says True
        "ff0e::1",  # is_global says True
        "2001:db8::1",
        "3fff::1",  # RFC 9637 documentation; is_global says True on 3.11
        "100::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",  # is_global says True
        "::10.0.0.1",
        "::8.8.8.8",
        "64:ff9b::127.0.0.1",  # is_global says True
        "64:ff9b::a00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a00:1",
        "64:ff9b:1::808:808",
        "2002:7f00:1::",  # is_global says True
        "2002:a00:1::1",
        "2002:a9fe:a9fe::",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo, public client 8.8.8.8
    ],
)
def test_not_globally_routable(address: str) -> None:
    assert not is_globally_routable(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "2002:808:808::1",
    ],
)
def test_globally_routable(address: str) -> None:
    assert is_globally_routable(ipaddress.ip_address(address))


def fake_resolver(*addresses: str) -> Any:
    """A getaddrinfo stand-in: no network, returns exactly ``addresses``."""
    calls: list[tuple[str, int]] = []

    async def resolve(host: str, port: int, *, type: int = 0) -> list[tuple[Any, ...]]:
        calls.append((host, port))
        infos: list[tuple[Any, ...]] = []
        for address in addresses:
            if ":" in address:
                infos.append((socket.AF_INET6, type, 6, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, type, 6, "", (address, port)))
        return infos

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


async def test_name_resolving_only_to_public_addresses_is_accepted() -> None:
    resolver = fake_resolver("8.8.8.8", "2606:4700:4700::1111", "8.8.8.8")
    addresses = await resolve_public_addresses("hooks.example.com", 443, resolver=resolver)
    assert addresses == ["8.8.8.8", "2606:4700:4700::1111"]
    assert resolver.calls == [("hooks.example.com", 443)]


@pytest.mark.parametrize(
    "addresses",
    [
        ("8.8.8.8", "10.0.0.1"),
        ("10.0.0.1", "8.8.8.8"),
        ("8.8.8.8", "::1"),
        ("8.8.8.8", "::ffff:169.254.169.254"),
        ("169.254.169.254",),
        ("fe80::1%eth0",),
    ],
)
async def test_name_resolving_to_any_private_address_is_refused(addresses: tuple[str]) -> None:
    with pytest.raises(UnsafeWebhookUrl, match="not a public address"):
        await resolve_public_addresses(
            "rebind.example.com", 443, resolver=fake_resolver(*addresses)
        )


async def test_private_addresses_allowed_when_asked() -> None:
    resolver = fake_resolver("8.8.8.8", "10.0.0.1")
    addresses = await resolve_public_addresses(
        "mixed.example.com", 443, allow_private=True, resolver=resolver
    )
    assert addresses == ["8.8.8.8", "10.0.0.1"]


async def test_resolution_failure_is_refused() -> None:
    async def failing(host: str, port: int, *, type: int = 0) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(UnsafeWebhookUrl, match="cannot resolve"):
        await resolve_public_addresses("nowhere.example.com", 443, resolver=failing)


async def test_resolving_to_nothing_is_refused() -> None:
    with pytest.raises(UnsafeWebhookUrl, match="no addresses"):
        await resolve_public_addresses("empty.example.com", 443, resolver=fake_resolver())


async def test_real_resolver_refuses_localhost() -> None:
    with pytest.raises(UnsafeWebhookUrl, match="not a public address"):
        await resolve_public_addresses("localhost", 443)


async def test_real_resolver_allows_localhost_when_private_allowed() -> None:
    addresses = await resolve_public_addresses("localhost", 443, allow_private=True)
    assert addresses
    assert all(ipaddress.ip_address(address).is_loopback for address in addresses)
