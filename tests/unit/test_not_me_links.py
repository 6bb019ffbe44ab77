""""Not me" links: signed by the alerting service, checked by the gateway; forged, tampered,
expired or malformed links are refused; only alerts about a person's login carry one."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, urlsplit

import pytest

from alerting.app import not_me_decorator
from alerting.config import AlertingConfig
from alerting.rules import Rules
from authorizer.iam.not_me import BadNotMeLink, NotMeClaim, NotMeLinks

SECRET = "an-alert-api-token-of-27-chars"
CLAIM = NotMeClaim("u-1", "keeper.sz", "a" * 32, 2_000_000)


def test_a_link_round_trips_and_anything_else_is_refused() -> None:
    links = NotMeLinks(SECRET)
    token = links.token(CLAIM)
    assert links.verify(token, 1_999_999) == CLAIM
    with pytest.raises(BadNotMeLink, match="expired"):
        links.verify(token, 2_000_000)
    with pytest.raises(BadNotMeLink, match="bad_signature"):
        NotMeLinks("another-secret-of-16+ chars").verify(token, 0)
    payload, _, signature = token.partition(".")
    forged = NotMeLinks(SECRET).token(NotMeClaim("u-2", "admin1", "a" * 32, 2_000_000)).partition(".")[0]
    with pytest.raises(BadNotMeLink, match="bad_signature"):
        links.verify(f"{forged}.{signature}", 0)  # another person under this link's signature
    for broken in ("", "abc", f"{payload}.", f".{signature}", f"{payload}.!!", "é.é"):
        with pytest.raises(BadNotMeLink):
            links.verify(broken, 0)
    with pytest.raises(ValueError):
        NotMeLinks("short")


def test_only_alerts_about_a_login_get_a_link_on_the_gateway() -> None:
    config = AlertingConfig(host="127.0.0.1", port=0, store_url="sqlite+aiosqlite:///unused.db",
                            events_secret="e" * 32, api_token=SECRET, console_url="https://wms.example.test")
    decorate = not_me_decorator(config, Rules())
    assert decorate is not None
    login = {"alert_id": "a" * 32, "rule": "multi_device_login", "subject": "keeper.sz",
             "facts": {"user_id": "u-1", "username": "keeper.sz"}}
    url = decorate(login)["facts"]["not_me_url"]
    assert url.startswith("https://wms.example.test/_gateway/not-me?t=")
    claim = NotMeLinks(SECRET).verify(parse_qs(urlsplit(url).query)["t"][0], 0)
    assert (claim.user_id, claim.username, claim.alert_id) == ("u-1", "keeper.sz", "a" * 32)
    other = {"alert_id": "b" * 32, "rule": "privilege_burst", "subject": "x", "facts": {"user_id": "u-1"}}
    assert "not_me_url" not in decorate(other)["facts"]
    assert not_me_decorator(dataclasses.replace(config, console_url=None), Rules()) is None
