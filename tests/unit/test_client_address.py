"""The client IP recorded in the audit trail: the peer, unless the peer is a trusted proxy."""

from __future__ import annotations

import ipaddress
from unittest import mock

from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from proxy.gateway import client_address

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"),)


def request(peer: str, xff: list[str]) -> object:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (peer, 50000) if name == "peername" else default
    headers = CIMultiDict(("X-Forwarded-For", v) for v in xff)
    return make_mocked_request("GET", "/", headers=headers, transport=transport)


def test_untrusted_peer_is_recorded_and_its_forwarded_for_ignored() -> None:
    assert client_address(request("192.0.2.7", ["203.0.113.9"]), TRUSTED) == "192.0.2.7"  # type: ignore[arg-type]


def test_no_trusted_proxies_means_the_peer() -> None:
    assert client_address(request("10.1.1.1", ["203.0.113.9"]), ()) == "10.1.1.1"  # type: ignore[arg-type]


def test_trusted_peer_yields_the_last_untrusted_hop() -> None:
    req = request("10.1.1.1", ["198.51.100.1, 203.0.113.9", "10.2.2.2"])
    assert client_address(req, TRUSTED) == "203.0.113.9"  # type: ignore[arg-type]


def test_all_hops_trusted_falls_back_to_the_peer() -> None:
    assert client_address(request("10.1.1.1", ["10.3.3.3"]), TRUSTED) == "10.1.1.1"  # type: ignore[arg-type]
