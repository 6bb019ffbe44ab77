"""Unit-test fixtures."""

from __future__ import annotations

import pytest

#: The secrets the shipped gateway configs name as ${VARIABLES} (a configured feature without its
#: secret does not load: see authorizer.config_schema).
CONFIG_SECRETS = ("WMSGATE_KC_ADMIN_SECRET", "WMSGATE_SSO_CLIENT_SECRET", "WMSGATE_ALERTING_API_TOKEN",
                  "WMSGATE_DB_PASSWORD")


@pytest.fixture
def config_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every secret the shipped configs name, set to a test value."""
    for name in CONFIG_SECRETS:
        monkeypatch.setenv(name, f"test-{name.lower()}")
