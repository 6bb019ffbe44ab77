"""The PDP client: one OPA query per request, turned into a :class:`Decision`.

Fail closed: an undefined result, a malformed one, or an obligation this PEP does
not know is a deny; OPA unreachable or too slow raises :class:`PdpUnavailable`
(the proxy answers 503).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from authorizer.config import OpaSettings
from authorizer.enforce.mask_kinds import MaskKind, parse_mask_kinds
from authorizer.messages import CATALOG, TEXTS

KNOWN_OBLIGATIONS = frozenset({"row_filter", "mask", "mask_kinds", "step_up", "approval", "export"})


@dataclass(frozen=True)
class Reason:
    """Why a decision came out as it did: a stable code and messages in zh-CN and en."""

    code: str
    zh: str
    en: str


@dataclass(frozen=True)
class StepUp:
    """A step-up obligation (RFC 9470): the authentication the request needs.

    Attributes:
        acr_values: the ACR (level of assurance) to ask the identity provider for (``mfa``).
        max_age: how long ago, in seconds, that authentication may have happened at most.
    """

    acr_values: str
    max_age: int

    def document(self) -> dict[str, Any]:
        """``{"acr_values": str, "max_age": int}`` (as the policy wrote it; for JSON answers)."""
        return {"acr_values": self.acr_values, "max_age": self.max_age}


@dataclass(frozen=True)
class ApprovalRule:
    """An approval obligation: hold the request for four-eyes approval.

    Attributes:
        operation: the high-risk operation's name (``order_delete``...).
        approvals: how many other people must approve (>= 1).
        expires_seconds: how long the held request waits for them, in seconds.
    """

    operation: str
    approvals: int
    expires_seconds: int


@dataclass(frozen=True)
class ExportControl:
    """An export obligation: count the rows, refuse too many, ask for a reason, watermark.

    Attributes:
        reason_over_rows: above this many rows the exporter must give a reason.
        approve_over_rows: above this many rows the export is held for four-eyes approval
            (``approval``) and handed out only once approved.
        refuse_over_rows: above this many rows the export is refused.
        approval: the approval a large export needs, or None (then it is refused instead).
        unmasked_pii: fields this answer carries unmasked that are masked for others (a
            reason is always needed when there are any).
    """

    reason_over_rows: int
    refuse_over_rows: int
    unmasked_pii: tuple[str, ...] = ()
    approve_over_rows: int | None = None
    approval: ApprovalRule | None = None


@dataclass(frozen=True)
class Obligations:
    """What the PEP must do to an allowed request.

    Attributes:
        row_filter: scope dimension -> allowed values (``("*",)`` = all) for list rows.
        mask: field paths to mask in the answer (``amount``, ``items[].price``).
        step_up: with a 401 deny, what to ask the identity provider for (RFC 9470).
        approval: with an allow, hold the request for four-eyes approval.
        export: with an allowed export, count, justify and watermark it.
        mask_kinds: masked field path -> its kind, for fields not simply redacted
            (:mod:`authorizer.enforce.mask_kinds`).
    """

    row_filter: dict[str, tuple[str, ...]] = field(default_factory=dict)
    mask: tuple[str, ...] = ()
    step_up: StepUp | None = None
    approval: ApprovalRule | None = None
    export: ExportControl | None = None
    mask_kinds: dict[str, MaskKind] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The PDP's answer.

    Attributes:
        allow: whether the request may proceed.
        status: HTTP status of a refusal (403 or 404); 200 when allowed.
        reasons: reasons, the first being the main one.
        obligations: what the PEP must enforce when allowed.
        policy_revision: revision of the policy that decided.
        high_risk: the high-risk operation the request is (``order_delete``...), or None.
    """

    allow: bool
    status: int
    reasons: tuple[Reason, ...]
    obligations: Obligations
    policy_revision: str
    high_risk: str | None = None

    @property
    def reason(self) -> Reason:
        """The main reason."""
        return self.reasons[0]


class PdpUnavailable(Exception):
    """OPA could not be reached, failed, or did not answer in time."""


def _reason(key: str, **params: Any) -> Reason:
    """A reason the PEP gives itself, from the catalog (:mod:`authorizer.messages`)."""
    message = CATALOG[key]
    return Reason(message.code or key, message.zh.format(**params), message.en.format(**params))


def _deny(key: str, revision: str = "unknown", **params: Any) -> Decision:
    return Decision(False, 403, (_reason(key, **params),), Obligations(), revision)


def parse_decision(result: Any) -> Decision:
    """Validate OPA's ``result`` document; anything unexpected becomes a deny.

    Args:
        result: the ``result`` member of OPA's answer (None when undefined).

    Returns:
        The decision. Denies carry ``pdp_undefined``, ``pdp_malformed`` or
        ``unknown_obligation`` when the document itself is at fault.
    """
    if result is None:
        return _deny("pdp_undefined")
    if not isinstance(result, dict) or not isinstance(result.get("allow"), bool):
        return _deny("pdp_malformed")
    revision = str(result.get("policy_revision", "unknown"))
    reasons = []
    for r in result.get("reasons") or []:
        if isinstance(r, dict) and isinstance(r.get("code"), str):
            reasons.append(Reason(r["code"], str(r.get("zh-CN", r["code"])), str(r.get("en", r["code"]))))
    if not reasons:
        allowed = TEXTS["allowed"]
        reasons.append(Reason("allowed", allowed.zh, allowed.en) if result["allow"] else _reason("denied"))
    obligations_doc = result.get("obligations", {})
    if not isinstance(obligations_doc, dict):
        return _deny("obligations_malformed", revision)
    unknown = sorted(k for k, v in obligations_doc.items() if k not in KNOWN_OBLIGATIONS and v not in (None, [], {}))
    if unknown:
        names = ", ".join(unknown)
        return _deny("unknown_obligation", revision, names=names)
    try:
        row_filter = {str(dim): tuple(str(v) for v in values)
                      for dim, values in (obligations_doc.get("row_filter") or {}).items()}
        mask = tuple(sorted({str(f) for f in obligations_doc.get("mask") or []}))  # a set: one order for any PDP
        step_up = _step_up(obligations_doc.get("step_up"))
        approval = _approval(obligations_doc.get("approval"))
        export = _export(obligations_doc.get("export"))
        mask_kinds = {path: kind for path, kind in parse_mask_kinds(obligations_doc.get("mask_kinds")).items()
                      if path in mask}
    except (AttributeError, TypeError, ValueError, KeyError):
        return _deny("obligations_malformed", revision)
    if result["allow"]:
        status = 200
    else:
        status = int(result["status"]) if result.get("status") in (401, 403, 404) else 403
        if status == 401 and step_up is None:
            status = 403
    high_risk = result.get("high_risk")
    return Decision(result["allow"], status, tuple(reasons), Obligations(row_filter, mask, step_up, approval, export,
                                                                    mask_kinds),
                    revision, high_risk if isinstance(high_risk, str) and high_risk else None)


def _step_up(doc: Any) -> StepUp | None:
    if doc is None:
        return None
    acr, max_age = doc["acr_values"], doc["max_age"]
    if not isinstance(acr, str) or not acr.replace("-", "").replace("_", "").isalnum() or not isinstance(max_age, int):
        raise ValueError("step_up needs acr_values (a word) and max_age (seconds)")
    return StepUp(acr, max_age)


def _approval(doc: Any) -> ApprovalRule | None:
    if doc is None:
        return None
    approvals, expires = doc["approvals"], doc["expires_seconds"]
    if not isinstance(doc["operation"], str) or not isinstance(approvals, int) or approvals < 1 \
            or not isinstance(expires, int) or expires < 1:
        raise ValueError("approval needs operation, approvals >= 1 and expires_seconds >= 1")
    return ApprovalRule(doc["operation"], approvals, expires)


def _export(doc: Any) -> ExportControl | None:
    if doc is None:
        return None
    reason, refuse, pii = doc["reason_over_rows"], doc["refuse_over_rows"], doc["unmasked_pii"]
    if not isinstance(reason, int) or not isinstance(refuse, int) or reason < 0 or refuse < 0 \
            or not isinstance(pii, list):
        raise ValueError("export needs reason_over_rows, refuse_over_rows (rows >= 0) and unmasked_pii")
    approve = doc.get("approve_over_rows")
    approval = _approval(doc.get("approval"))
    if (approve is not None or approval is not None) and (not isinstance(approve, int) or approve < 0):
        raise ValueError("export approve_over_rows must be rows >= 0 where an export approval is given")
    return ExportControl(reason, refuse, tuple(sorted(str(f) for f in pii)), approve, approval)


class DecisionPoint(Protocol):
    """A PDP the PEP asks once per request: :class:`OpaClient` (the OPA sidecar) or
    :class:`~authorizer.authz.inprocess_pdp.InProcessPdp` (the same bundle, in-process)."""

    async def decide(self, policy_input: dict[str, Any]) -> Decision:
        """Decide on ``policy_input``; raises :class:`PdpUnavailable` when it cannot."""
        ...


class OpaClient:
    """Asks OPA's data API for the decision document.

    Args:
        session: the app's shared keep-alive aiohttp session.
        settings: OPA URL, decision path and timeout.
    """

    def __init__(self, session: aiohttp.ClientSession, settings: OpaSettings) -> None:
        self._session = session
        self._url = f"{settings.url}/v1/data/{settings.decision_path.strip('/')}"
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_seconds)

    async def decide(self, policy_input: dict[str, Any]) -> Decision:
        """Query the PDP once.

        Args:
            policy_input: the ``input`` document (subject, action, resource, request).

        Returns:
            The parsed decision (deny on undefined or malformed answers).

        Raises:
            PdpUnavailable: connection error, timeout, or a non-200 answer.
        """
        payload = json.dumps({"input": policy_input}, ensure_ascii=False).encode()
        try:
            async with self._session.post(self._url, data=payload, timeout=self._timeout,
                                          headers={"Content-Type": "application/json"}) as resp:
                if resp.status != 200:
                    raise PdpUnavailable(f"OPA answered {resp.status}: {(await resp.text())[:200]}")
                body = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise PdpUnavailable(f"OPA unreachable: {exc!r}") from exc
        if not isinstance(body, dict):
            return parse_decision({})
        return parse_decision(body.get("result"))
