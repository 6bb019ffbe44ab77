"""The alerting service: Keycloak's login and admin events and the gateway's decisions
become durable, grouped alerts delivered to webhooks, group robots and e-mail.

Layout: ``events`` (one normalized event shape), ``intake`` (signed push from the
Keycloak plugin), ``backfill`` (Keycloak's event REST API from a checkpoint),
``audit_feed`` (the gateway's decisions from the audit trail), ``detectors/`` (the
rules), ``engine`` (dedupe, detect, group), ``store`` (SQLAlchemy), ``notifiers/`` and
``delivery`` (outbox with retries), ``api`` (list, acknowledge, resolve), ``app``.
"""
