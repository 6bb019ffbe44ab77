"""The alerting service's aiohttp application: intake, API, and its background tasks
(delivery worker, Keycloak backfill, audit feed, event retention)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from aiohttp import web
from cachetools import TTLCache
from keycloak.exceptions import KeycloakError

from alerting.api import AlertApi
from alerting.audit_feed import AuditFeed
from alerting.backfill import KeycloakBackfill, keycloak_admin
from alerting.config import AlertingConfig, NotifierSettings
from alerting.delivery import DeliveryWorker
from alerting.detectors import build_detectors
from alerting.engine import Engine, UsernameLookup
from alerting.intake import Intake
from alerting.notifiers import (
    DingTalkNotifier,
    EmailNotifier,
    Notifier,
    SlackNotifier,
    SmtpServer,
    WebhookNotifier,
    WeComNotifier,
)
from alerting.rules import Rules, load_rules
from alerting.store import AlertStore, now_ms, service_status
from authorizer.db import make_engine
from authorizer.iam.not_me import LINK_LIFETIME_MS, NotMeClaim, NotMeLinks
from authorizer.tls import client_context
from keycloak import KeycloakAdmin

log = logging.getLogger(__name__)

CONFIG: web.AppKey[AlertingConfig] = web.AppKey("config", AlertingConfig)


def build_notifier(settings: NotifierSettings, session: aiohttp.ClientSession, console_url: str | None,
                   tls: ssl.SSLContext | None = None) -> Notifier:
    """The notifier a config entry describes (``tls``: how an SMTP server's certificate is verified)."""
    s = settings
    if s.kind == "webhook":
        return WebhookNotifier(s.name, s.url, s.secret, session, s.timeout_seconds)
    if s.kind == "dingtalk":
        return DingTalkNotifier(s.name, s.url, s.secret, session, console_url, s.timeout_seconds)
    if s.kind == "wecom":
        return WeComNotifier(s.name, s.url, session, console_url, s.timeout_seconds)
    if s.kind == "slack":
        return SlackNotifier(s.name, s.url, session, console_url, s.timeout_seconds)
    server = SmtpServer(s.host, s.port, s.security, s.username, s.password, s.timeout_seconds, tls)
    return EmailNotifier(s.name, server, s.sender, list(s.recipients), console_url)


def username_lookup(admin: KeycloakAdmin) -> UsernameLookup:
    """Resolves Keycloak user ids to usernames (cached 10 minutes; None when unknown or unreachable)."""
    cache: TTLCache[str, str | None] = TTLCache(maxsize=10_000, ttl=600)

    async def lookup(user_id: str) -> str | None:
        if user_id in cache:
            return cache[user_id]
        try:
            name = (await admin.a_get_user(user_id)).get("username")
        except (KeycloakError, OSError, ValueError) as exc:
            log.debug("username of %s unknown: %s", user_id, exc)
            name = None
        cache[user_id] = name
        return name

    return lookup


async def _forget_old_events(store: AlertStore, days: int) -> None:
    while True:
        try:
            gone = await store.forget_events(now_ms() - days * 86_400_000)
            if gone:
                log.info("forgot %d stored event(s) older than %d days", gone, days)
        except Exception:
            log.exception("event retention failed")
        await asyncio.sleep(3600)


def not_me_decorator(config: AlertingConfig, rules: Rules) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """What adds a "not me" link (:mod:`authorizer.iam.not_me`, on the gateway at ``console_url``,
    valid a day) to the messages of alerts about a person's login (rules with ``demand_step_up``);
    None without a ``console_url``."""
    if not config.console_url:
        return None
    links, base, login_rules = NotMeLinks(config.api_token), config.console_url, rules.step_up_rules()

    def decorate(alert: dict[str, Any]) -> dict[str, Any]:
        facts = alert.get("facts") or {}
        if alert.get("rule") not in login_rules or not facts.get("user_id"):
            return alert
        claim = NotMeClaim(str(facts["user_id"]), str(facts.get("username") or alert.get("subject") or ""),
                           str(alert["alert_id"]), int(time.time() * 1000) + LINK_LIFETIME_MS)
        return {**alert, "facts": {**facts, "not_me_url": links.url(base, claim)}}

    return decorate


def create_app(config: AlertingConfig, rules: Rules | None = None) -> web.Application:
    """The service as an aiohttp application (background tasks start with it).

    Args:
        config: the service configuration.
        rules: detector rules (default: read from ``config.rules_file``).

    Raises:
        alerting.rules.RulesError: the rules file is invalid.
    """
    rules = rules or load_rules(config.rules_file)
    app = web.Application(client_max_size=config.max_event_bytes)
    app[CONFIG] = config
    store = AlertStore(config.store_url)
    notifiers: dict[str, Notifier] = {}  # filled at startup (they share one HTTP session)
    worker = DeliveryWorker(store, notifiers, config.retry_initial_seconds, config.retry_max_seconds,
                            config.pacing, not_me_decorator(config, rules))
    admin = None
    if config.keycloak is not None:
        k = config.keycloak
        admin = keycloak_admin(k.url, k.realm, k.client_id, k.client_secret,
                               str(config.trust_ca_file) if config.trust_ca_file else True)
    engine = Engine(store, lambda: build_detectors(rules), [n.name for n in config.notifiers],
                    rules.longest_window_ms(), username_lookup(admin) if admin else None, worker.wake)
    sources = ["push"] + (["keycloak-backfill"] if admin else []) + (["gateway-audit"] if config.audit_url else [])

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def status_of() -> dict[str, Any]:
        return {**await service_status(store), "notifiers": [n.name for n in config.notifiers], "sources": sources}

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await store.create_schema()
        # webhooks, robots and SMTP: certificates verified against the system's CAs plus trust.ca_file
        tls = client_context(config.trust_ca_file)
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls))
        notifiers.update({s.name: build_notifier(s, session, config.console_url, tls) for s in config.notifiers})
        log.info("detectors primed with %d recent event(s)", await engine.prime())
        tasks = [asyncio.create_task(worker.run_forever(), name="deliveries"),
                 asyncio.create_task(_forget_old_events(store, config.event_retention_days), name="retention")]
        if admin is not None and config.keycloak is not None:
            backfill = KeycloakBackfill(engine, store, admin, config.keycloak.interval_seconds,
                                        int(config.keycloak.first_lookback_hours * 3600_000))
            log.info("caught up with %d event(s) from Keycloak's event store", await backfill.catch_up())
            tasks.append(asyncio.create_task(backfill.run_forever(), name="keycloak-backfill"))
        audit_engine = make_engine(config.audit_url) if config.audit_url else None
        if audit_engine is not None:
            feed = AuditFeed(engine, store, audit_engine, config.audit_poll_seconds)
            tasks.append(asyncio.create_task(feed.run_forever(), name="gateway-audit"))
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()
        if audit_engine is not None:
            await audit_engine.dispose()
        await store.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/health", health)
    app.router.add_post("/events", Intake(engine, config.events_secret, config.max_event_bytes).handle)
    AlertApi(store, config.api_token, status_of, rules.step_up_rules()).add_routes(app)
    return app
