"""Access changes in Keycloak (offboarding, role changes) and revocation of what they cut.

The gateway holds a Keycloak service account (client ``wms-access-admin``) and uses
python-keycloak's admin API. Every narrowing change first writes a revocation record,
so the proxy refuses the person's existing tokens before Keycloak has even finished.
Changes made directly in Keycloak reach the proxy through Keycloak's admin events
(:class:`AdminEventWatcher`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from keycloak.exceptions import KeycloakError

from authorizer.authn.revocation import RevocationCache, RevocationStore
from authorizer.authz.scope import SCOPE_DIMENSIONS
from authorizer.iam.grants import GrantRow, GrantStore, shanghai
from authorizer.iam.sod import ConflictSource, ConflictsUnavailable
from authorizer.messages import CatalogError
from keycloak import KeycloakAdmin, KeycloakOpenIDConnection

log = logging.getLogger(__name__)

#: Realm roles Keycloak creates itself; never granted or removed by the gateway.
BUILT_IN_ROLES = frozenset({"offline_access", "uma_authorization"})


async def _end_all_sessions(kc: KeycloakAdmin, user_id: str, report: ChangeReport) -> None:
    """End every Keycloak session and offline token of ``user_id`` (steps noted on ``report``).

    Raises:
        KeycloakError: Keycloak failed part-way.
    """
    await kc.a_user_logout(user_id)
    report.steps.append("all sessions ended")
    for consent in await kc.a_user_consents(user_id):
        await kc.a_revoke_consent(user_id, consent["clientId"])
    report.steps.append("offline tokens revoked")


class AccessError(CatalogError):
    """An access change cannot be made: a :data:`~authorizer.messages.CATALOG` entry (``status``
    is the HTTP status to answer with)."""


@dataclass
class ChangeReport:
    """What an access change did, step by step (printed by the CLI, stored in the audit trail)."""

    username: str
    user_id: str
    steps: list[str] = field(default_factory=list)
    revoked_not_before: int | None = None

    def document(self) -> dict[str, Any]:
        return {"username": self.username, "user_id": self.user_id, "steps": self.steps,
                "tokens_revoked_before": self.revoked_not_before}


@dataclass(frozen=True)
class KeycloakAdminSettings:
    """How the gateway reaches Keycloak's admin API.

    Attributes:
        server_url: Keycloak base URL, e.g. ``http://127.0.0.1:8180``.
        realm: the realm of the staff (``wms``).
        client_id: the service-account client.
        client_secret: its secret.
        verify: TLS verification: True (system CAs) or the path of a CA bundle (PEM).
    """

    server_url: str
    realm: str
    client_id: str
    client_secret: str
    verify: bool | str = True


def _is_wms_role(name: str, realm: str) -> bool:
    return name not in BUILT_IN_ROLES and name != f"default-roles-{realm}"


class AccessService:
    """Offboarding and role changes through Keycloak's admin API.

    Args:
        settings: Keycloak admin connection.
        revocations: where revocation records go.
        cache: this process's revocation cache (updated at once).
        grants: the record of temporary grants (needed for bulk grants and the sweeper).
        conflicts: the separation-of-duties rules (None: none are checked).
    """

    def __init__(self, settings: KeycloakAdminSettings, revocations: RevocationStore, cache: RevocationCache,
                 grants: GrantStore | None = None, conflicts: ConflictSource | None = None) -> None:
        self._conflicts = conflicts
        self._grants = grants
        self._s = settings
        self._revocations = revocations
        self._cache = cache
        self._admin: KeycloakAdmin | None = None

    def _kc(self) -> KeycloakAdmin:
        if self._admin is None:
            connection = KeycloakOpenIDConnection(
                server_url=self._s.server_url.rstrip("/") + "/", realm_name=self._s.realm, client_id=self._s.client_id,
                client_secret_key=self._s.client_secret, grant_type="client_credentials", timeout=20,
                verify=self._s.verify)
            self._admin = KeycloakAdmin(connection=connection)
        return self._admin

    async def user(self, username: str) -> dict[str, Any]:
        """The user representation (with attributes) of ``username``.

        Raises:
            AccessError: 404 when there is no such user; 502 when Keycloak fails.
        """
        try:
            users = await self._kc().a_get_users({"username": username, "exact": True, "briefRepresentation": False})
        except KeycloakError as exc:
            raise AccessError("identity_provider_error", detail=exc) from exc
        match = [u for u in users if u.get("username") == username]
        if not match:
            raise AccessError("user_not_found", username=username)
        found: dict[str, Any] = match[0]
        return found

    async def person(self, username: str) -> dict[str, Any]:
        """What the console shows about a person: ``username, user_id, enabled, name, roles,
        scope`` (dimension -> values) and ``grants`` (active temporary grants, times in epoch s).

        Raises:
            AccessError: 404 when there is no such user; 502 when Keycloak fails.
        """
        user = await self.user(username)
        try:
            roles = await self.wms_roles_of(user["id"])
        except KeycloakError as exc:
            raise AccessError("identity_provider_error", detail=exc) from exc
        attributes = user.get("attributes") or {}
        scope = {dim: list(attributes.get(f"wms_{dim}", [])) for dim in ("warehouse", "channel", "order_type")}
        grants = await self._grants.active_for(user["id"], int(time.time())) if self._grants is not None else []
        return {"username": user["username"], "user_id": user["id"], "enabled": bool(user.get("enabled")),
                "name": " ".join(p for p in (user.get("lastName"), user.get("firstName")) if p),
                "roles": roles, "scope": scope, "grants": grants}

    async def directory(self) -> list[dict[str, Any]]:
        """Every person of the realm (all pages) for "who can" answers and access reviews: ``user_id,
        username, enabled, roles, scope`` each (one roles call per person: meant for admin pages,
        not the request path).

        Raises:
            AccessError: 502 when Keycloak fails.
        """
        try:
            users = await self._kc().a_get_users({"briefRepresentation": False})  # every page: nobody is skipped
            people = []
            for user in users:
                attributes = user.get("attributes") or {}
                people.append({"user_id": user["id"], "username": user["username"],
                               "enabled": bool(user.get("enabled")), "roles": await self.wms_roles_of(user["id"]),
                               "scope": {dim: list(attributes.get(f"wms_{dim}", []))
                                         for dim in ("warehouse", "channel", "order_type")}})
        except KeycloakError as exc:
            raise AccessError("identity_provider_error", detail=exc) from exc
        return sorted(people, key=lambda p: p["username"])

    async def active_grants(self) -> dict[str, list[dict[str, Any]]]:
        """Every temporary grant not yet ended, by user id (empty without a grant store)."""
        if self._grants is None:
            return {}
        by_user: dict[str, list[dict[str, Any]]] = {}
        for grant in await self._grants.active(int(time.time())):
            by_user.setdefault(str(grant["user_id"]), []).append(grant)
        return by_user

    async def check_separation(self, username: str, roles: Iterable[str]) -> None:
        """Refuse to let ``username`` hold ``roles`` together when they conflict (separation of
        duties, :mod:`authorizer.iam.sod`).

        Raises:
            AccessError: 409 ``role_conflict`` naming the first conflict; 503
                ``policy_engine_unavailable`` when the policy cannot be asked (fail closed).
        """
        if self._conflicts is None:
            return
        try:
            found = await self._conflicts(sorted(set(roles)))
        except ConflictsUnavailable as exc:
            raise AccessError("policy_engine_unavailable", detail=exc) from exc
        if found:
            first = found[0]
            raise AccessError("role_conflict", username=username, roles=" + ".join(first.roles), why_zh=first.zh,
                              why_en=first.en)

    async def check_grant_separation(self, rows: Iterable[GrantRow]) -> None:
        """Refuse temporary grants that would give someone conflicting roles: each person's
        current WMS roles plus every role the rows grant them.

        Raises:
            AccessError: see :meth:`check_separation`; 502 when Keycloak fails.
        """
        if self._conflicts is None:
            return
        wanted: dict[str, set[str]] = {}
        for row in rows:
            wanted.setdefault(row.username, set()).add(row.role)
        for username, roles in sorted(wanted.items()):
            try:
                current = await self.effective_wms_roles_of((await self.user(username))["id"])
            except AccessError as exc:
                if exc.key != "user_not_found":
                    raise
                current = []  # a new account holds only what it is granted
            except KeycloakError as exc:
                raise AccessError("identity_provider_error", detail=exc) from exc
            await self.check_separation(username, roles | set(current))

    async def wms_roles_of(self, user_id: str) -> list[str]:
        """The WMS realm roles mapped directly to the user."""
        roles = await self._kc().a_get_realm_roles_of_user(user_id)
        return sorted(r["name"] for r in roles if _is_wms_role(r["name"], self._s.realm))

    async def effective_wms_roles_of(self, user_id: str) -> list[str]:
        """The WMS realm roles the user holds in effect: mapped directly, through groups, or
        inside composite roles (what their token carries)."""
        roles = await self._kc().a_get_composite_realm_roles_of_user(user_id)
        return sorted(r["name"] for r in roles if _is_wms_role(r["name"], self._s.realm))

    async def _revoke(self, report: ChangeReport, reason: str, actor: str) -> None:
        not_before = await self._revocations.revoke(report.user_id, reason, actor)
        self._cache.note(report.user_id, not_before)
        report.revoked_not_before = not_before
        report.steps.append(f"tokens issued before {not_before} (epoch s) are refused by the gateway")

    async def offboard(self, username: str, reason: str, actor: str) -> ChangeReport:
        """Cut all access of ``username`` at once: revoke tokens, disable the account, remove
        every WMS role and the data scope, end every session and offline token.
        The audit trail of what they did is not touched.

        Raises:
            AccessError: unknown user or Keycloak failure.
        """
        user = await self.user(username)
        report = ChangeReport(username, user["id"])
        await self._revoke(report, f"offboarded: {reason}", actor)
        kc = self._kc()
        try:
            await kc.a_update_user(user["id"], {"enabled": False})
            report.steps.append("account disabled")
            roles = await kc.a_get_realm_roles_of_user(user["id"])
            wms_roles = [r for r in roles if _is_wms_role(r["name"], self._s.realm)]
            if wms_roles:
                await kc.a_delete_realm_roles_of_user(user["id"], wms_roles)
            report.steps.append(f"roles removed: {', '.join(sorted(r['name'] for r in wms_roles)) or '(none)'}")
            attributes = {k: v for k, v in (user.get("attributes") or {}).items() if not k.startswith("wms_")}
            await kc.a_update_user(user["id"], {"attributes": attributes, "enabled": False})
            report.steps.append("data scope and grants removed")
            await _end_all_sessions(kc, user["id"], report)
        except KeycloakError as exc:
            report.steps.append(f"Keycloak failed part-way: {exc}; tokens stay revoked")
            raise AccessError("identity_provider_error_partial", detail=exc) from exc
        return report

    async def end_sessions(self, user_id: str, reason: str, actor: str) -> ChangeReport:
        """End every session of a person whose login was not theirs ("not me"): tokens issued
        until now are refused, every Keycloak session and offline token ends. Roles, scope and
        the account stay (they change their password and log in again).

        Raises:
            AccessError: unknown user or Keycloak failure (tokens stay revoked).
        """
        try:
            user = await self._kc().a_get_user(user_id)
        except KeycloakError as exc:
            raise AccessError("user_not_found", username=user_id) from exc
        report = ChangeReport(str(user.get("username", "")), user_id)
        await self._revoke(report, f"not me: {reason}", actor)
        try:
            await _end_all_sessions(self._kc(), user_id, report)
        except KeycloakError as exc:
            report.steps.append(f"Keycloak failed part-way: {exc}; tokens stay revoked")
            raise AccessError("identity_provider_error_partial", detail=exc) from exc
        return report

    async def narrow(self, username: str, roles: list[str], scope: Mapping[str, list[str]], reason: str,
                     actor: str) -> ChangeReport:
        """Take ``roles`` and the ``scope`` values (dimension -> values) away from ``username`` and
        refuse tokens issued before (a narrowing change: access reviews, immediate). Roles and
        values the person no longer holds are skipped, so repeating it is harmless.

        Raises:
            AccessError: unknown user (404), or Keycloak failed part-way (502; tokens stay revoked).
        """
        user = await self.user(username)
        report = ChangeReport(username, user["id"])
        await self._revoke(report, f"narrowed: {reason}", actor)
        kc = self._kc()
        try:
            current = [r for r in await kc.a_get_realm_roles_of_user(user["id"])
                       if _is_wms_role(r["name"], self._s.realm)]
            removed = [r for r in current if r["name"] in roles]
            if removed:
                await kc.a_delete_realm_roles_of_user(user["id"], removed)
            report.steps.append(f"roles removed: {', '.join(sorted(r['name'] for r in removed)) or '-'}")
            if any(scope.values()):
                attributes = dict(user.get("attributes") or {})
                for dim, values in scope.items():
                    key = f"wms_{dim}"
                    attributes[key] = [v for v in attributes.get(key, []) if v not in values]
                await kc.a_update_user(user["id"], {"attributes": attributes})
                report.steps.append("scope removed: " + "; ".join(f"{d}={','.join(v)}" for d, v in scope.items() if v))
        except KeycloakError as exc:
            raise AccessError("identity_provider_error_partial", detail=exc) from exc
        # again after the change: a token refreshed between the first revocation and the update
        # still carried the old roles or scope
        await self._revoke(report, f"narrowed: {reason}", actor)
        return report

    async def set_roles(self, username: str, roles: list[str], scope: dict[str, list[str]] | None,
                        actor: str) -> ChangeReport:
        """Replace the person's WMS roles (and optionally their data scope) in one step and
        refuse tokens issued before the change; the next token carries only the new roles.

        Raises:
            AccessError: unknown user or role, roles that conflict (409 ``role_conflict``,
                separation of duties), or Keycloak failure.
        """
        user = await self.user(username)
        report = ChangeReport(username, user["id"])
        kc = self._kc()
        try:
            wanted = [await kc.a_get_realm_role(name) for name in roles]
        except KeycloakError as exc:
            raise AccessError("unknown_role", detail=f"{roles}: {exc}") from exc
        if any(not _is_wms_role(r["name"], self._s.realm) for r in wanted):
            raise AccessError("built_in_role")
        try:  # roles held through groups or composites stay: they count with the new ones
            kept = set(await self.effective_wms_roles_of(user["id"])) - set(await self.wms_roles_of(user["id"]))
        except KeycloakError as exc:
            raise AccessError("identity_provider_error", detail=exc) from exc
        await self.check_separation(username, {r["name"] for r in wanted} | kept)
        await self._revoke(report, f"roles set to {', '.join(roles)}", actor)
        try:
            current = [r for r in await kc.a_get_realm_roles_of_user(user["id"])
                       if _is_wms_role(r["name"], self._s.realm)]
            removed = [r for r in current if r["name"] not in roles]
            added = [r for r in wanted if r["name"] not in {c["name"] for c in current}]
            if removed:
                await kc.a_delete_realm_roles_of_user(user["id"], removed)
            if added:
                await kc.a_assign_realm_roles(user["id"], added)
            report.steps.append(f"roles now: {', '.join(sorted(roles))} (removed: "
                                f"{', '.join(sorted(r['name'] for r in removed)) or '-'}; added: "
                                f"{', '.join(sorted(r['name'] for r in added)) or '-'})")
            if scope is not None:
                attributes = dict(user.get("attributes") or {})
                for dim in SCOPE_DIMENSIONS:
                    attributes[f"wms_{dim}"] = list(scope.get(dim, []))
                await kc.a_update_user(user["id"], {"attributes": attributes})
                report.steps.append("data scope set: " + "; ".join(f"{d}={','.join(scope.get(d, [])) or '-'}"
                                                                    for d in SCOPE_DIMENSIONS))
        except KeycloakError as exc:
            raise AccessError("identity_provider_error", detail=exc) from exc
        return report


    async def bulk_grant(self, rows: list[GrantRow], actor: str) -> list[dict[str, Any]]:
        """Give each row's person the role and scope for the row's window, creating accounts
        that do not exist (temporary password, to be changed at first login, marked as
        existing only for the grant). Existing people keep their scope and gain the grant's.

        Returns:
            The sheet for the warehouse manager: one entry per person, times in Asia/Shanghai,
            with the temporary password of new accounts.

        Raises:
            AccessError: an unknown role or roles that conflict (both checked before anything
                changes), or a Keycloak failure.
        """
        if self._grants is None:
            raise AccessError("grants_unavailable")
        kc = self._kc()
        roles: dict[str, dict[str, Any]] = {}
        try:
            for name in sorted({r.role for r in rows}):
                role = await kc.a_get_realm_role(name)
                if not _is_wms_role(role["name"], self._s.realm):
                    raise KeycloakError("built-in role")
                roles[name] = role
        except KeycloakError as exc:
            raise AccessError("unknown_role", detail=f"in the grant: {exc}") from exc
        await self.check_grant_separation(rows)
        sheet = []
        try:
            for row in rows:
                sheet.append(await self._grant_one(row, roles[row.role], actor))
        except KeycloakError as exc:
            raise AccessError("identity_provider_error_grants", done=len(sheet), total=len(rows), detail=exc) from exc
        return sheet

    async def _grant_one(self, row: GrantRow, role: dict[str, Any], actor: str) -> dict[str, Any]:
        kc = self._kc()
        assert self._grants is not None
        found = await kc.a_get_users({"username": row.username, "exact": True, "briefRepresentation": False})
        existing = next((u for u in found if u.get("username") == row.username), None)
        password = None
        if existing is None:
            password = secrets.token_urlsafe(9)
            attributes = {f"wms_{dim}": row.scope[dim] for dim in SCOPE_DIMENSIONS}
            attributes.update({"wms_grant": [row.attribute()], "wms_temporary_account": ["true"]})
            user_id = await kc.a_create_user({
                "username": row.username, "enabled": True, "firstName": row.display_name or row.username,
                "lastName": "-", "attributes": attributes, "requiredActions": ["UPDATE_PASSWORD"],
                "credentials": [{"type": "password", "value": password, "temporary": True}]})
        else:
            user_id = existing["id"]
            attributes = dict(existing.get("attributes") or {})
            for dim in SCOPE_DIMENSIONS:
                key = f"wms_{dim}"
                attributes[key] = sorted(set(attributes.get(key, [])) | set(row.scope[dim]))
            attributes["wms_grant"] = list(attributes.get("wms_grant", [])) + [row.attribute()]
            await kc.a_update_user(user_id, {"attributes": attributes})
        await kc.a_assign_realm_roles(user_id, [role])
        await self._grants.add(row, user_id, existing is None, actor)
        return {"username": row.username, "display_name": row.display_name, "role": row.role,
                "warehouses": row.scope["warehouse"], "valid_from": shanghai(row.valid_from),
                "valid_until": shanghai(row.valid_until), "new_account": existing is None,
                "temporary_password": password}

    async def sweep_grants(self, now_s: int | None = None, grace_seconds: int = 5) -> list[str]:
        """Remove ended grants from Keycloak: the window from the person's attributes, the role
        when no other live grant needs it, the account when it existed only for grants now all
        ended; tokens issued before are refused. Returns the usernames handled.

        Grants are swept ``grace_seconds`` after their end; until then (and at any time) the
        policy already refuses the ended role with the reason ``grant_outside_window``.
        """
        if self._grants is None:
            return []
        now_s = int(time.time()) if now_s is None else now_s
        kc = self._kc()
        handled = []
        for grant in await self._grants.due(now_s - grace_seconds):
            if not await self._grants.claim(grant["grant_id"]):
                continue  # another proxy process is ending it
            try:
                try:
                    user = await kc.a_get_user(grant["user_id"])
                except KeycloakError:
                    await self._grants.mark_swept(grant["grant_id"], "account no longer exists")
                    continue
                await self._end_grant(grant, user, now_s, f"temporary grant of {grant['role']} ended",
                                      "grant-sweeper")
            except BaseException:
                await self._grants.release(grant["grant_id"])
                raise
            handled.append(grant["username"])
        return handled

    async def _end_grant(self, grant: dict[str, Any], user: dict[str, Any], now_s: int, reason: str,
                         actor: str) -> ChangeReport:
        """Take one grant away in Keycloak: tokens issued before are refused, its window leaves the
        person's attributes, the role goes when no other live grant needs it, and an account that
        existed only for grants now all ended is disabled and logged out."""
        kc = self._kc()
        assert self._grants is not None  # grants exist only with a grant store
        user_id = grant["user_id"]
        live = [g for g in await self._grants.active_for(user_id, now_s) if g["grant_id"] != grant["grant_id"]]
        report = ChangeReport(grant["username"], user_id)
        await self._revoke(report, reason, actor)
        attributes = dict(user.get("attributes") or {})
        ended = f"{grant['role']}|{grant['valid_from_s']}|{grant['valid_until_s']}"
        attributes["wms_grant"] = [g for g in attributes.get("wms_grant", []) if g != ended]
        update: dict[str, Any] = {"attributes": attributes}
        if grant["temporary_account"] and not live:
            update["enabled"] = False
        await kc.a_update_user(user_id, update)
        report.steps.append(f"grant window {ended} removed")
        if not any(g["role"] == grant["role"] for g in live):
            role = await kc.a_get_realm_role(grant["role"])
            await kc.a_delete_realm_roles_of_user(user_id, [role])
            report.steps.append(f"role removed: {grant['role']}")
        if update.get("enabled") is False:
            await kc.a_user_logout(user_id)
            report.steps.append("temporary account disabled, sessions ended")
        await self._grants.mark_swept(grant["grant_id"], "disabled" if update.get("enabled") is False else
                                      "role and window removed")
        return report

    async def revoke_grant(self, username: str, grant_id: str, reason: str, actor: str) -> ChangeReport:
        """End one temporary grant of ``username`` now, before its window closes (a narrowing
        change: the same steps as when it ends on its own).

        Raises:
            AccessError: 404 unknown user or no such live grant of theirs; 502 Keycloak failure.
        """
        user = await self.user(username)
        now_s = int(time.time())
        grant = next((g for g in await self._grants.active_for(user["id"], now_s) if g["grant_id"] == grant_id),
                     None) if self._grants is not None else None
        if grant is None or self._grants is None or not await self._grants.claim(grant_id):
            raise AccessError("grant_not_found", username=username)
        try:
            return await self._end_grant(grant, user, now_s, f"temporary grant of {grant['role']} revoked early: "
                                                             f"{reason}", actor)
        except KeycloakError as exc:
            await self._grants.release(grant_id)
            raise AccessError("identity_provider_error_partial", detail=exc) from exc
        except BaseException:
            await self._grants.release(grant_id)
            raise

    async def run_grant_sweeper(self, interval_seconds: float) -> None:
        """Sweep ended grants every ``interval_seconds`` until cancelled."""
        while True:
            try:
                await self.sweep_grants()
            except Exception:
                log.exception("grant sweep failed")
            await asyncio.sleep(interval_seconds)


def _user_id(resource_path: str) -> str | None:
    parts = resource_path.split("/")
    return parts[1] if len(parts) >= 2 and parts[0] == "users" else None


def revoking_event(event: dict[str, Any]) -> str | None:
    """The user id whose tokens an admin event should revoke, or None.

    Revoking: a user disabled or deleted, a role mapping removed, a forced logout.
    """
    path = str(event.get("resourcePath", ""))
    user_id = _user_id(path)
    if user_id is None:
        return None
    kind, op = event.get("resourceType"), event.get("operationType")
    if kind == "USER" and op == "DELETE" and path.count("/") == 1:
        return user_id
    if kind == "USER" and op == "UPDATE" and path.count("/") == 1:
        try:
            representation = json.loads(event.get("representation") or "{}")
        except ValueError:
            return user_id  # cannot tell what changed: revoke (fail closed)
        return user_id if representation.get("enabled") is False else None
    if kind in ("REALM_ROLE_MAPPING", "CLIENT_ROLE_MAPPING") and op == "DELETE":
        return user_id
    if op == "ACTION" and path.endswith("/logout"):
        return user_id
    return None


class AdminEventWatcher:
    """Turns Keycloak admin events (changes made in its console or API) into revocations.

    Polls the realm's admin events every ``interval_seconds`` from a checkpoint (the newest
    event time seen), so a change made directly in Keycloak reaches every proxy within a
    few seconds. Each poll asks only for events from the checkpoint on (``dateFrom`` in epoch
    milliseconds, oldest first: Keycloak 26's admin-events API), page after page, so a burst of
    changes is read whole. For ``LOOKBACK_MS`` after the checkpoint moved (or a poll failed) the
    polls also ask for the ``LOOKBACK_MS`` before it, and events already handled are known by
    their id: an event stored a little after a newer one (another transaction), or moved across
    a page boundary by events of the same millisecond, is not skipped. Once that settles, a
    quiet realm costs one answer holding the checkpoint's own event(s).

    Args:
        service: the access service (its Keycloak connection is reused).
        revocations: where revocation records go.
        cache: this process's revocation cache.
        interval_seconds: polling period, seconds.
    """

    #: Events asked for per request.
    PAGE = 100
    #: Milliseconds before the checkpoint asked again while it settles.
    LOOKBACK_MS = 2000

    def __init__(self, service: AccessService, revocations: RevocationStore, cache: RevocationCache,
                 interval_seconds: float = 1.0) -> None:
        self._service = service
        self._revocations = revocations
        self._cache = cache
        self._interval = interval_seconds
        self._checkpoint_ms = int(time.time() * 1000)
        self._settle_until = time.monotonic() + self.LOOKBACK_MS / 1000  # look back at start too
        self._handled: dict[str, int] = {}  # event id -> its time (ms), for the lookback window

    async def poll(self) -> int:
        """One pass; returns how many revocations it made.

        Raises:
            RuntimeError: Keycloak answered the same full page twice (it ignored ``first``).
            Any error of Keycloak or the revocation store: what was not handled is asked again
            by the next poll.
        """
        looking_back = time.monotonic() < self._settle_until
        since = self._checkpoint_ms - (self.LOOKBACK_MS if looking_back else 0)
        made, newest, seen = 0, self._checkpoint_ms, set[str]()
        try:
            while True:
                page = await self._service._kc().a_get_admin_events(
                    {"dateFrom": str(since), "direction": "asc", "first": len(seen), "max": self.PAGE})
                fresh = 0
                for event in page:
                    at = int(event.get("time", 0))
                    key = str(event.get("id") or f"{at}:{event.get('resourcePath')}:{event.get('operationType')}")
                    if key in seen:
                        continue
                    seen.add(key)
                    fresh += 1
                    if at < since or key in self._handled:
                        continue
                    made += await self._handle(event, at)
                    self._handled[key] = at
                    newest = max(newest, at)
                if len(page) < self.PAGE:
                    break
                if not fresh:
                    raise RuntimeError("Keycloak answered the same page of admin events twice (is `first` ignored?)")
        except BaseException:
            self._settle_until = time.monotonic() + self.LOOKBACK_MS / 1000  # keep asking for what may be unhandled
            raise
        if newest > self._checkpoint_ms:
            self._checkpoint_ms = newest
            self._settle_until = time.monotonic() + self.LOOKBACK_MS / 1000
        floor = self._checkpoint_ms - self.LOOKBACK_MS
        self._handled = {k: at for k, at in self._handled.items() if at >= floor}
        return made

    async def _handle(self, event: dict[str, Any], at: int) -> int:
        """Revoke what ``event`` calls for; 1 when it revoked, 0 when it needs nothing."""
        user_id = revoking_event(event)
        if user_id is None:
            return 0
        not_before = await self._revocations.revoke(
            user_id, f"Keycloak admin event {event.get('operationType')} {event.get('resourcePath')}",
            f"keycloak:{(event.get('authDetails') or {}).get('userId', '?')}", at=at / 1000)
        self._cache.note(user_id, not_before)
        return 1

    async def run_forever(self) -> None:
        """Poll until cancelled; failures are logged and retried."""
        while True:
            try:
                await self.poll()
            except Exception:
                log.exception("admin event poll failed")
            await asyncio.sleep(self._interval)
