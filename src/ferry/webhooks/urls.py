"""Which URLs a webhook may POST to: http or https, no credentials in the URL, and (unless
FERRY_WEBHOOK_ALLOW_PRIVATE) no loopback, link-local, multicast, unspecified or reserved
address. Checked when a webhook is created or changed, and again at each delivery: the URL, and
(webhooks/delivery.py's resolver) every address the name resolves to for that very connection,
so a name that changes what it points at cannot lead a delivery to a forbidden address."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from ferry.webhooks.errors import WebhookInvalid

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(WebhookInvalid):
    """A target URL (or the address it resolves to) that webhooks may not reach."""


def _forbidden(ip: Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved


def check_url(url: str, allow_private: bool) -> str:
    """The URL's host name; UrlRefused says what is wrong with it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        raise UrlRefused("webhook url is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("webhook url must be http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("webhook url must not carry credentials (use the secret to authenticate)")
    host = parts.hostname or ""
    if not host:
        raise UrlRefused("webhook url has no host")
    if allow_private:
        return host
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        raise UrlRefused(f"webhook url host {host} is loopback")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if _forbidden(ip):
        raise UrlRefused(f"webhook url address {host} is loopback, link-local, multicast or unspecified")
    return host


def forbidden_address(address: str) -> bool:
    """Whether a resolved address (as getaddrinfo gives it, maybe with an IPv6 zone) is one
    webhooks may not reach."""
    return _forbidden(ipaddress.ip_address(address.split("%")[0]))
