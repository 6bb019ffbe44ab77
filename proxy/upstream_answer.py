"""Making a WMS answer safe to relay: the conventions of the WMS behind the gateway.

Legacy WMSs leak in their answers: a debug page on a 500 (one echoed a tenant
token), banner headers naming the server software, absolute links to the WMS's
internal address in ``Location`` and in JSON (DRF's ``next``/``previous``), and a
failure reported inside a 200 body (``{"detail": ..., "status_code": 400}``), which
would otherwise be audited as a success. This module knows those conventions
(``upstream.answers`` in the gateway config); :mod:`proxy.forward` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from multidict import CIMultiDict, CIMultiDictProxy

from authorizer.config import AnswerSettings
from authorizer.messages import CATALOG
from proxy.responses import Refusal

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "proxy-connection"})
_NEVER_RETURN = HOP_BY_HOP | {"content-length", "content-encoding", "set-cookie"}
#: Headers of a replaced 5xx answer that still reach the client.
_KEPT_ON_REPLACE = frozenset({"retry-after"})


class UpstreamFailure(Refusal):
    """The WMS answered with an error whose body the client must not see (a 5xx, or a
    non-JSON 4xx where the decision requires masking): the gateway answers with its own
    error of the same status. ``upstream_status``/``upstream_ms`` go to the audit record."""

    upstream_status: int = 0
    upstream_ms: float = 0.0


def upstream_error(status: int, ms: float, retry_after: str | None) -> UpstreamFailure:
    """The gateway's own answer for a WMS error ``status`` (its body is dropped).

    Args:
        status: the WMS's status (kept for the client: 500, 503...).
        ms: how long the WMS took, milliseconds.
        retry_after: the WMS's ``Retry-After`` header, kept when present.
    """
    key = "upstream_error" if status >= 500 else "upstream_refused"
    message = CATALOG[key]
    failure = UpstreamFailure(status, message.code or key, message.zh, message.en,
                              headers={"Retry-After": retry_after} if retry_after else {})
    failure.upstream_status, failure.upstream_ms = status, ms
    return failure


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True)
class LinkTarget:
    """Where rewritten WMS links point.

    Attributes:
        origin: the gateway's origin as clients reach it (``scheme://host[:port]``).
        params: query parameters added to each rewritten link (the gateway's own, e.g.
            ``warehouse=SH``: the next page stays in the tenant the request named), or "".
    """

    origin: str
    params: str = ""


@dataclass(frozen=True)
class BodyOutcome:
    """What a JSON answer's body says about the outcome.

    Attributes:
        status: the status the body reports (``status_field``), or None when it reports none.
        links: how many absolute WMS links were rewritten to the gateway's origin.
    """

    status: int | None
    links: int


class AnswerConventions:
    """The WMS's answer conventions, applied to every answer.

    Args:
        settings: ``upstream.answers`` (banner headers, the body status field, extra origins).
        upstream_url: the WMS's base URL (its origin is always rewritten).
    """

    def __init__(self, settings: AnswerSettings, upstream_url: str) -> None:
        self._drop = frozenset(h.lower() for h in settings.drop_headers) | _NEVER_RETURN
        self._status_field = settings.status_field
        self._origins = tuple(dict.fromkeys([_origin(upstream_url), *(_origin(o) for o in settings.origins)]))
        self._status_member = f'"{settings.status_field}"'.encode() if settings.status_field is not None else b""
        self._ascii_origins = (tuple(o.encode("ascii") for o in self._origins)
                               if all(o.isascii() for o in self._origins) else None)
        self._lowering_to_origin = tuple(
            char.encode() for char, could in (("\u212a", any("k" in o for o in self._origins)),
                                               ("\u0130", any(o.endswith("i") for o in self._origins))) if could)

    @property
    def reads_json(self) -> bool:
        """True when every JSON answer must be read (a body status field, or links to rewrite)."""
        return self._status_field is not None or bool(self._origins)

    def concerns(self, raw: bytes) -> bool:
        """A cheap look at an answer's bytes: could it hold a WMS link or the body status field?
        When not, it need not be parsed. Any escape of ``/`` or ``\\u`` counts as could (escapes
        can spell an origin or the field, half-escaped ones too: ``http:/\\/wms``), and so does
        an answer that is not UTF-8 when only its decoded text can settle it (see :meth:`concerns_plain`)."""
        if b"\\u" in raw or b"\\/" in raw:
            return True
        return self.concerns_plain(raw)

    def _ascii_match(self, data: bytes) -> bool | None:
        """Whether ``data`` holds an origin, settled on the bytes lowered as ASCII; None when only
        the decoded text lowered can settle it (see :meth:`concerns_plain`)."""
        if self._ascii_origins is None or any(c in data for c in self._lowering_to_origin):
            return None
        lowered = data.lower()
        return any(o in lowered for o in self._ascii_origins)

    def concerns_plain(self, data: bytes) -> bool:
        """Could a parsed answer, written back as ``data`` (UTF-8, without escapes: orjson's), hold
        a WMS link (a string starting with an origin, compared as :meth:`rewrite_url` compares:
        after ``str.lower``) or the body status field (a member name)? When not, :meth:`inspect`
        would find nothing.

        ASCII origins are looked for in the bytes lowered as ASCII, which finds what the decoded
        text lowered would, except through the two characters ``str.lower`` turns into ASCII
        letters: the Kelvin sign (to "k") and U+0130 (to "i" and a combining dot, so it can only end
        a match). When one of them is in the answer and an origin could match through it (holds a
        "k", ends with "i"), or an origin is not ASCII, the text is decoded and lowered."""
        if self._status_field is not None and self._status_member in data:
            return True
        found = self._ascii_match(data)
        if found is not None:
            return found
        try:
            text = data.decode("utf-8").lower()
        except UnicodeDecodeError:  # only from :meth:`concerns` (orjson writes UTF-8): cannot tell, so could
            return True
        return any(o in text for o in self._origins)

    def response_headers(self, upstream: CIMultiDictProxy[str], links: LinkTarget) -> CIMultiDict[str]:
        """The WMS's headers as the client may see them: hop-by-hop, banner (``Server``,
        ``X-Powered-By``...) and cookie headers dropped, a ``Location`` on the WMS rewritten
        to the gateway (``links``)."""
        listed = {t.strip().lower() for v in upstream.getall("Connection", []) for t in v.split(",")}
        out: CIMultiDict[str] = CIMultiDict()
        for name, value in upstream.items():
            lower = name.lower()
            if lower in self._drop or lower in listed:
                continue
            out.add(name, self.rewrite_url(value, links) if lower in ("location", "content-location")
                    else value)
        return out

    @staticmethod
    def replaced_headers(upstream: CIMultiDictProxy[str]) -> str | None:
        """The ``Retry-After`` of an answer whose body is replaced (the only header kept)."""
        return next((v for k, v in upstream.items() if k.lower() in _KEPT_ON_REPLACE), None)

    def rewrite_url(self, value: str, links: LinkTarget) -> str:
        """``value`` with a leading WMS origin replaced by the gateway's (else unchanged), and
        ``links.params`` added to its query."""
        lower = value.lower()
        for origin in self._origins:
            if lower.startswith(origin) and (len(value) == len(origin) or value[len(origin)] in "/?#"):
                rest = value[len(origin):]
                if links.params:
                    rest = rest or "/"
                    path, hash_mark, fragment = rest.partition("#")
                    path += ("&" if "?" in path else "?") + links.params
                    rest = path + hash_mark + fragment
                return links.origin + rest
        return value

    def inspect(self, document: Any, links: LinkTarget) -> BodyOutcome:
        """Rewrite absolute WMS links anywhere in a JSON ``document`` (in place) and read the
        status its body reports (``status_field``, an integer 100-599 at the top level)."""
        count = self._rewrite_links(document, links) if self._origins else 0
        status = None
        if self._status_field is not None and isinstance(document, dict):
            value = document.get(self._status_field)
            if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
                status = value
            elif isinstance(value, str) and value.isdigit() and 100 <= int(value) <= 599:
                status = int(value)
        return BodyOutcome(status, count)

    def _rewrite_links(self, node: Any, links: LinkTarget) -> int:
        count = 0
        if isinstance(node, dict):
            items = node.items()
        elif isinstance(node, list):
            items = enumerate(node)  # type: ignore[assignment]
        else:
            return 0
        for key, value in list(items):
            if isinstance(value, str):
                if "://" in value:
                    new = self.rewrite_url(value, links)
                    if new is not value and new != value:
                        node[key] = new
                        count += 1
            elif isinstance(value, (dict, list)):
                count += self._rewrite_links(value, links)
        return count
