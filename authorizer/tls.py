"""TLS for the gateway: the proxy's own listener and the certificates it trusts outbound.

Server side: TLS 1.2 or newer only, certificate chain and key from PEM files. Client
side (the WMS, Keycloak, OPA): the system's trusted CAs plus, optionally, a CA bundle
of the organisation's own (``trust.ca_file``); hostnames and certificates are always
verified (there is no switch to turn that off).
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class TlsSettings:
    """The proxy's TLS listener (``listen.tls``).

    Attributes:
        cert_file: the certificate chain (PEM; the server certificate first).
        key_file: its private key (PEM).
    """

    cert_file: Path
    key_file: Path


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """A server context accepting TLS 1.2 and 1.3 only.

    Raises:
        ssl.SSLError, OSError: the certificate or key cannot be read or do not match.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.cert_file, settings.key_file)
    return context


def client_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """A client context: the system's CAs plus ``ca_file`` (PEM bundle) when given; TLS 1.2+,
    certificate and hostname verification on.

    Raises:
        ssl.SSLError, OSError: ``ca_file`` cannot be read.
    """
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
