"""How a masked field is masked: redact, null, partial, keyed hash, amount band, month.

The policy's ``mask`` obligation names the fields; ``mask_kinds`` names, per field, a kind
other than the default redaction (``rego/base/wms/authz/obligations.rego``). The same kind is
applied wherever the value shows: JSON answers, HTML table cells, CSV exports and the
gateway's own views of held requests. A value a kind cannot transform (a band of a word, the
month of something that is not a date) is redacted: masking fails closed.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

REDACTED = "***"
KINDS = frozenset({"redact", "null", "partial", "hash", "band", "month"})
_MONTH = re.compile(r"^\s*(\d{4})[-/.](\d{1,2})(?:\D|$)")


@dataclass(frozen=True)
class MaskKind:
    """One field's kind of mask.

    Attributes:
        kind: ``redact`` (``"***"``; numbers and null become null), ``null`` (the value becomes
            null, an empty cell in CSV/HTML), ``partial`` (``keep_first`` and ``keep_last``
            characters kept, each other one ``*``: ``138****1234``), ``hash`` (``"h:"`` and 16
            hex digits of HMAC-SHA256 under the gateway's key: equal values give equal
            hashes), ``band`` (a number as the ``width``-wide band it falls in: ``"1200~1300"``),
            ``month`` (an ISO-like date or timestamp as ``"YYYY-MM"``).
        keep_first, keep_last: characters ``partial`` keeps at each end.
        width: the band width of ``band`` (in the value's unit, e.g. yuan), > 0.
    """

    kind: str = "redact"
    keep_first: int = 0
    keep_last: int = 4
    width: float = 100.0


REDACT = MaskKind()


def parse_mask_kinds(doc: Any) -> dict[str, MaskKind]:
    """The ``mask_kinds`` obligation as field path -> kind.

    Args:
        doc: the obligation: ``{path: {"kind": str, "keep_first": int, "keep_last": int,
            "width": number}}`` (members other than ``kind`` optional), or None.

    Raises:
        ValueError: an unknown kind, a negative count or a band width that is not > 0 (the
            PDP then denies: ``obligations_malformed``).
    """
    if not doc:
        return {}
    if not isinstance(doc, dict):
        raise ValueError("mask_kinds must be an object")
    kinds = {}
    for path, spec in doc.items():
        if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
            raise ValueError(f"mask_kinds.{path}: unknown kind")
        first, last, width = spec.get("keep_first", 0), spec.get("keep_last", 4), spec.get("width", 100)
        if not (isinstance(first, int) and isinstance(last, int) and first >= 0 and last >= 0):
            raise ValueError(f"mask_kinds.{path}: keep_first and keep_last must be counts >= 0")
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0 \
                or not math.isfinite(width):
            raise ValueError(f"mask_kinds.{path}: width must be a number > 0")
        kinds[str(path)] = MaskKind(spec["kind"], first, last, float(width))
    return kinds


#: The longest value (characters) whose digest :class:`KeyedHasher` keeps: ids, names, phones.
REMEMBERED_LENGTH = 128


class KeyedHasher:
    """HMAC-SHA256 (RFC 2104) of masked values under the gateway's secret key.

    The digests of the last ``remembered`` values of at most :data:`REMEMBERED_LENGTH` characters
    are kept (least recently used first out): a list page masks the same customer in many rows, and
    a kept digest costs a tenth of a new one. The bound on length bounds the memory they hold.

    Args:
        key: the secret (bytes, at least 16); every gateway process of a deployment shares it,
            so a hash is the same in every answer and export.
        remembered: how many values' digests are kept (0: none).

    Raises:
        ValueError: the key is shorter than 16 bytes.
    """

    def __init__(self, key: bytes, remembered: int = 4096) -> None:
        if len(key) < 16:
            raise ValueError("the masking hash key must be at least 16 bytes")
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)  # copied per value: the key is set up once
        self._remembered = functools.lru_cache(maxsize=remembered)(self._compute)

    def digest(self, text: str) -> str:
        """``"h:"`` and the first 16 hex digits (64 bits) of the HMAC of ``text`` (UTF-8)."""
        return self._remembered(text) if len(text) <= REMEMBERED_LENGTH else self._compute(text)

    def _compute(self, text: str) -> str:
        mac = self._keyed.copy()
        mac.update(text.encode("utf-8"))
        return "h:" + mac.hexdigest()[:16]


def _text(value: Any) -> str:
    """The text a value hashes or is cut from: a string as is, a date or time as ISO 8601 (an
    Excel cell), anything else as compact JSON (``123`` and the CSV cell ``"123"`` give the
    same text, so they hash alike)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def _partial(text: str, kind: MaskKind) -> str:
    shown = kind.keep_first + kind.keep_last
    if len(text) <= shown:  # keeping that much would show it all
        return REDACTED
    end = text[len(text) - kind.keep_last:] if kind.keep_last else ""
    return text[:kind.keep_first] + "*" * (len(text) - shown) + end


def _number(value: Any) -> Decimal | None:
    """A finite number of sane size (at most 30 digits before the point), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = Decimal(str(value)) if not isinstance(value, float) or math.isfinite(value) else None
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip().replace(",", ""))
        except InvalidOperation:
            return None
    else:
        return None
    return number if number is not None and number.is_finite() and number.adjusted() < 30 else None


def _band(value: Any, width: float) -> str | None:
    number = _number(value)
    if number is None:
        return None
    step = Decimal(str(width))
    try:
        low = (number / step).to_integral_value(rounding="ROUND_FLOOR") * step
    except ArithmeticError:  # a width so small the band cannot be written: redacted instead
        return None
    return f"{_plain(low)}~{_plain(low + step)}"


def _plain(number: Decimal) -> str:
    text = format(number.normalize(), "f")
    return text if text != "-0" else "0"


def _month(value: Any) -> str | None:
    if isinstance(value, dt.date):  # an Excel date or datetime cell
        return f"{value.year:04d}-{value.month:02d}"
    found = _MONTH.match(value) if isinstance(value, str) else None
    if found is None or not 1 <= int(found.group(2)) <= 12:
        return None
    return f"{found.group(1)}-{int(found.group(2)):02d}"


def redact(value: Any) -> Any:
    """The default mask: ``"***"``; numbers and null become null (a client parsing a number gets none)."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return None
    return REDACTED


@dataclass(frozen=True)
class MaskKinds:
    """The kinds of one decision's masks, with the key hashes are made with.

    Attributes:
        by_path: field path (as in the ``mask`` obligation) -> kind; a path not in it is redacted.
        hasher: the gateway's keyed hasher, or None when none is configured (``hash`` then redacts).
    """

    by_path: Mapping[str, MaskKind] = field(default_factory=dict)
    hasher: KeyedHasher | None = None

    def of_path(self, path: str) -> MaskKind:
        """The kind of the field ``path`` (redact when the policy names none)."""
        return self.by_path.get(path, REDACT)

    def of_column(self, paths: tuple[str, ...], column: str) -> MaskKind:
        """The kind of a flattened column (CSV, an HTML table) that masked ``paths`` name by their
        last field (``rows[].revenue`` names ``revenue``); the strongest when several do."""
        kinds = [self.of_path(p) for p in paths if p.rsplit(".", 1)[-1].removesuffix("[]") == column]
        return max(kinds, key=lambda k: _STRENGTH[k.kind], default=REDACT)

    def value(self, kind: MaskKind, value: Any) -> Any:
        """``value`` (a JSON value) masked with ``kind``; None stays None whatever the kind."""
        name = kind.kind
        if value is None or name == "null":
            return None
        if name == "redact" or isinstance(value, (dict, list)):
            return redact(value)
        if name == "hash":
            return self.hasher.digest(_text(value)) if self.hasher is not None else redact(value)
        transformed = (_partial(_text(value), kind) if name == "partial"
                       else _band(value, kind.width) if name == "band" else _month(value))
        return redact(value) if transformed is None else transformed

    def cell(self, kind: MaskKind, text: str) -> str:
        """A CSV or HTML cell's text masked with ``kind`` (an empty cell stays empty; null empties it)."""
        if text == "":
            return text
        masked = self.value(kind, text)
        return "" if masked is None else str(masked)


#: Kinds from the lightest to the strongest (as ``mask_kind_rank`` in the policy).
_STRENGTH = {"partial": 1, "month": 2, "band": 3, "hash": 4, "redact": 5, "null": 6}
