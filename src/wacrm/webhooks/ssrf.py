"""Keep outbound webhooks off the service's own network (SSRF guard).

Two gates, both run at registration and again before every delivery:

* `normalise_webhook_url` checks the URL text and returns the one canonical form to store and use.
  IP-literal hosts are parsed the way browsers (WHATWG URL) parse them, so odd spellings such as
  ``0x7f.1`` are judged as the address they are.
* `resolve_public_addresses` resolves the host and vets every address. The caller must connect to
  exactly those addresses: a second lookup could be answered differently (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
_DEFAULT_PORTS = {"https": 443, "http": 80}
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_LABEL = re.compile(r"[a-z0-9_-]{1,63}")

# Listed explicitly because `is_global` misses some (multicast, 6to4, NAT64, IPv4-compatible,
# site-local, newer documentation ranges) and its answers differ between Python releases.
_NOT_GLOBAL = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class UnsafeWebhookUrl(ValueError):
    """The webhook URL, or an address its host resolves to, must not be used."""


class Resolver(Protocol):
    """The shape of `loop.getaddrinfo`, narrowed to what is used here."""

    def __call__(
        self, host: str, port: int, *, type: int = ...
    ) -> Awaitable[Sequence[tuple[Any, ...]]]: ...


def normalise_webhook_url(raw: str, *, allow_private: bool = False) -> str:
    """Validate a webhook URL and return its canonical form, or raise `UnsafeWebhookUrl`.

    Nothing is stripped or repaired: whitespace, control characters, backslashes, credentials,
    non-ASCII outside the host, and fragments are all refused. Fragments are refused rather than
    dropped because they are never sent to the server, so one is always a mistake.

    Canonical form: lowercase scheme and host, IDN hosts in punycode, IP literals in standard
    notation, the port kept only when it is not the scheme's default (443/80), and an empty path
    written as ``/``. Ports must be 1-65535.

    ``allow_private`` (local development and tests) also allows ``http`` and non-public hosts.
    """
    _check_characters(raw)
    scheme, colon, rest = raw.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        raise UnsafeWebhookUrl("webhook URL must be an absolute https:// URL")
    scheme = scheme.lower()
    allowed = ("https", "http") if allow_private else ("https",)
    if scheme not in allowed:
        raise UnsafeWebhookUrl(f"webhook URL scheme must be {' or '.join(allowed)}")
    if not rest.startswith("//"):
        raise UnsafeWebhookUrl(f"expected '//' after '{scheme}:'")
    rest = rest[2:]
    if "#" in rest:
        raise UnsafeWebhookUrl("webhook URL must not contain a fragment ('#')")

    authority = re.split(r"[/?]", rest, maxsplit=1)[0]
    path = rest[len(authority) :]
    if "@" in authority:
        raise UnsafeWebhookUrl("webhook URL must not contain credentials ('user@')")
    if not path.isascii():
        raise UnsafeWebhookUrl("non-ASCII characters in the path or query must be percent-encoded")
    host, port = _split_port(authority)
    host = _canonical_host(host, allow_private=allow_private)
    port_part = "" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}"
    if not path.startswith("/"):
        path = "/" + path

    url = f"{scheme}://{host}{port_part}{path}"
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeWebhookUrl(f"webhook URL is longer than {MAX_URL_LENGTH} characters")
    return url


def is_globally_routable(ip: IPAddress) -> bool:
    """True only for an address on the public internet.

    An IPv6 address that embeds an IPv4 one (mapped, IPv4-compatible, NAT64, 6to4, Teredo) is
    refused when the embedded address is not public. Mapped and well-known NAT64 addresses deliver
    to the embedded address, so that alone decides; the other forms must also pass on their own,
    which the deprecated IPv4-compatible form, Teredo and local-use NAT64 never do.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None and not is_globally_routable(inner):
            return False
        if ip.ipv4_mapped is not None or ip in _NAT64:
            return True
    if any(ip in net for net in _NOT_GLOBAL):
        return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


async def resolve_public_addresses(
    host: str, port: int, *, allow_private: bool = False, resolver: Resolver | None = None
) -> list[str]:
    """Resolve ``host`` and return its addresses, refusing unless every one of them is public.

    Connect to the returned addresses only; never look the name up again. ``resolver`` defaults
    to the running loop's ``getaddrinfo``. With ``allow_private`` any address is accepted.
    """
    lookup = resolver or asyncio.get_running_loop().getaddrinfo
    try:
        infos = await lookup(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeWebhookUrl(f"cannot resolve webhook host {_clip(host)}") from exc

    addresses: list[str] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0])
        if not allow_private and not is_globally_routable(ip):
            raise UnsafeWebhookUrl(
                f"webhook host {_clip(host)} resolves to {ip}, which is not a public address"
            )
        if str(ip) not in addresses:
            addresses.append(str(ip))
    if not addresses:
        raise UnsafeWebhookUrl(f"webhook host {_clip(host)} resolves to no addresses")
    return addresses


def _check_characters(raw: str) -> None:
    if len(raw) > MAX_URL_LENGTH:
        raise UnsafeWebhookUrl(f"webhook URL is longer than {MAX_URL_LENGTH} characters")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeWebhookUrl("webhook URL is not valid UTF-8") from None
    if raw != raw.strip():
        raise UnsafeWebhookUrl("webhook URL must not start or end with whitespace")
    for char in raw:
        if char.isspace() or unicodedata.category(char) == "Cc":
            raise UnsafeWebhookUrl("webhook URL must not contain whitespace or control characters")
        if char == "\\":
            raise UnsafeWebhookUrl("webhook URL must not contain a backslash")


def _split_port(authority: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        end = authority.find("]") + 1
        if not end:
            raise UnsafeWebhookUrl("unterminated IPv6 address in webhook URL")
        host, after = authority[:end], authority[end:]
    else:
        host, colon, digits = authority.partition(":")
        after = colon + digits
    if not after:
        return host, None
    if not after.startswith(":"):
        raise UnsafeWebhookUrl("unexpected characters after the IPv6 address in webhook URL")
    digits = after[1:]
    if not (digits.isascii() and digits.isdigit()) or not 1 <= int(digits) <= 65535:
        raise UnsafeWebhookUrl("webhook URL port must be a number from 1 to 65535")
    return host, int(digits)


def _canonical_host(host: str, *, allow_private: bool) -> str:
    if not host:
        raise UnsafeWebhookUrl("webhook URL must have a host")
    if host.startswith("["):
        ipv6 = _parse_ipv6(host[1:-1])
        _vet_literal(host, ipv6, allow_private=allow_private)
        return f"[{ipv6.compressed}]"
    name = _to_ascii(host)
    if _ends_in_number(name):
        ipv4 = _parse_ipv4(name)
        _vet_literal(host, ipv4, allow_private=allow_private)
        return str(ipv4)
    if not allow_private and (name == "localhost" or name.endswith(".localhost")):
        raise UnsafeWebhookUrl(f"webhook host {_clip(name)} is not a public host")
    return name


def _parse_ipv6(text: str) -> ipaddress.IPv6Address:
    if "%" in text:
        raise UnsafeWebhookUrl("IPv6 zone identifiers are not allowed in webhook URLs")
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        raise UnsafeWebhookUrl(f"invalid IPv6 address {_clip(text)}") from None


def _to_ascii(host: str) -> str:
    lowered = name = host.lower()
    if not name.isascii():
        try:
            name = lowered.encode("idna").decode("ascii")
            # IDNA 2003 silently maps or drops some characters; only accept names it keeps as is.
            unchanged = name.encode("ascii").decode("idna") == lowered
        except UnicodeError:
            unchanged = False
        if not unchanged:
            raise UnsafeWebhookUrl(f"invalid internationalised host name {_clip(host)}")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise UnsafeWebhookUrl(f"invalid host name {_clip(host)}")
    return name


def _ends_in_number(name: str) -> bool:
    """WHATWG "ends in a number": such a host is an IPv4 address or invalid, never a name."""
    last = name.rsplit(".", 1)[-1]
    return last.isdigit() or _ipv4_number(last) is not None


def _ipv4_number(text: str) -> int | None:
    """WHATWG IPv4 number: decimal, octal with a leading 0, hex with 0x ("0x" alone is 0)."""
    if text.startswith("0x"):
        digits, base = text[2:], 16
    elif len(text) > 1 and text.startswith("0"):
        digits, base = text[1:], 8
    else:
        digits, base = text, 10
    # Checked by hand because int() also accepts signs, underscores and whitespace.
    if not all(char in "0123456789abcdef"[:base] for char in digits):
        return None
    return int(digits, base) if digits else 0


def _parse_ipv4(name: str) -> ipaddress.IPv4Address:
    """WHATWG IPv4 parser: 1-4 parts, the last one filling all remaining bytes (``127.1``)."""
    parts = name.split(".")
    numbers = [number for number in map(_ipv4_number, parts) if number is not None]
    if len(parts) > 4 or len(numbers) != len(parts):
        raise UnsafeWebhookUrl(f"host {_clip(name)} is neither a valid name nor an IPv4 address")
    *leading, last = numbers
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(numbers)):
        raise UnsafeWebhookUrl(f"host {_clip(name)} is neither a valid name nor an IPv4 address")
    value = last + sum(number << (8 * (3 - i)) for i, number in enumerate(leading))
    return ipaddress.IPv4Address(value)


def _vet_literal(host: str, ip: IPAddress, *, allow_private: bool) -> None:
    if not allow_private and not is_globally_routable(ip):
        raise UnsafeWebhookUrl(f"webhook host {_clip(host)} is {ip}, which is not a public address")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client; [0] is the Teredo server
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def _clip(text: str) -> str:
    """Quote user input for an error message, never more than 100 characters of it."""
    return repr(text[:100]) + ("..." if len(text) > 100 else "")
