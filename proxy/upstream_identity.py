"""What the WMS receives as the caller's identity: header values and credentials.

Header templates (``upstream.identity_headers``) follow :mod:`authorizer.enforce.caller_identity`
(``{username}``, ``{attr:wms_staff_id}`` per tenant...). A caller without a value a
template needs is refused (403 ``no_caller_identity``): the WMS must never act under
someone else's or nobody's id.

Credentials (``upstream.credentials``) are secrets read once from files: one static
value, or one per warehouse (the tenant's).
"""

from __future__ import annotations

from pathlib import Path

from authorizer.authn.identity import Principal
from authorizer.config import CredentialSettings, UpstreamSettings
from authorizer.enforce.caller_identity import MissingIdentity, attribute_names, render, template_problems
from proxy.responses import Refusal, refusal


def no_caller_identity(name: str) -> Refusal:
    """403: the WMS needs a value of the caller the token does not carry."""
    return refusal("no_caller_identity", name=name)



def _read_secret(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read credential file {path}: {exc}") from exc


class UpstreamIdentity:
    """The identity headers and credentials the WMS receives for a person.

    Args:
        settings: the upstream settings (header templates, credential files). Secret
            files are read once here.

    Attributes:
        attribute_names: token claims the templates read (``{attr:NAME}``); a request held
            for approval keeps their values so it runs later under the same WMS identity.

    Raises:
        ValueError: a credential file cannot be read, or a template has an unknown placeholder.
    """

    def __init__(self, settings: UpstreamSettings) -> None:
        for name, template in settings.identity_headers.items():
            if problems := template_problems(template):
                raise ValueError(f"upstream.identity_headers.{name}: unknown placeholder(s) "
                                 f"{', '.join('{' + p + '}' for p in problems)}; use {{username}}, {{user_id}}, "
                                 "{roles} or {attr:CLAIM}")
        self._templates = dict(settings.identity_headers)
        self.attribute_names = frozenset(attribute_names(list(self._templates.values())))
        self._static: dict[str, str] = {}
        self._per_warehouse: dict[str, dict[str, str]] = {}
        for cred in settings.credentials:
            self._load(cred)

    def _load(self, cred: CredentialSettings) -> None:
        if cred.file is not None:
            self._static[cred.header] = cred.format.replace("{secret}", _read_secret(cred.file))
        else:
            self._per_warehouse[cred.header] = {wh: cred.format.replace("{secret}", _read_secret(p))
                                                for wh, p in cred.per_warehouse.items()}

    @property
    def tenants(self) -> frozenset[str]:
        """The warehouses that have a per-warehouse credential (empty without such credentials)."""
        return frozenset(wh for secrets in self._per_warehouse.values() for wh in secrets)

    def static_credentials(self) -> dict[str, str]:
        """The credential headers that do not depend on the warehouse."""
        return dict(self._static)

    def credentials(self, warehouse: str | None) -> dict[str, str]:
        """The credential headers for requests in ``warehouse`` (the gateway's own lookups use them).

        Raises:
            Refusal: a per-warehouse credential is configured but ``warehouse`` has none
                (403 ``no_upstream_credential``).
        """
        out = dict(self._static)
        for header, secrets in self._per_warehouse.items():
            if warehouse is None or warehouse not in secrets:
                raise refusal("no_upstream_credential")
            out[header] = secrets[warehouse]
        return out

    def headers(self, principal: Principal, warehouse: str | None) -> dict[str, str]:
        """Headers to add for ``principal``; ``warehouse`` (the tenant) picks per-warehouse
        credentials and per-tenant attribute values.

        Raises:
            Refusal: 403 ``no_upstream_credential`` (no credential for the warehouse) or
                ``no_caller_identity`` (the caller lacks an attribute a template needs).
        """
        try:
            out = {name: render(template, principal, warehouse) for name, template in self._templates.items()}
        except MissingIdentity as exc:
            raise no_caller_identity(exc.name) from None
        out.update(self.credentials(warehouse))
        return out
