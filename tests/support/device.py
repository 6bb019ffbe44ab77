"""The one device the test suite is: every login it makes (Chromium, the httpx login helpers)
sends this User-Agent, so the alerting service sees the suite's users on one device from
127.0.0.1 and opens no multi-device alert for them (an open one would demand a step-up on
their next high-risk request). Tests of multi-device detection log in from other loopback
addresses with other agents on purpose (tests.support.alerting.login_from)."""

from __future__ import annotations

TEST_DEVICE_UA = "Mozilla/5.0 (X11; Linux x86_64) wmsgate-test-suite/1"
