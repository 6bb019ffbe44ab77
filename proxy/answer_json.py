"""Reading and writing the WMS's JSON answers that the gateway rewrites (masks, row filters, links).

orjson parses and serializes several times faster than the standard library, but it does not read
every document the same way: an integer of 19 digits or more may come back as a float (lossy), and
``NaN``, ``Infinity``, lone surrogate escapes, out-of-range exponents and UTF-16/32 text are
refused. So a document is parsed by orjson only when it has no run of 19 digits, and by the
standard library otherwise or when orjson refuses it: the value is then always what
``json.loads`` gives. It is written back by the encoder that read it (orjson writes NaN as null).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

#: Every byte to "0" (an ASCII digit) or " " (anything else): 19 digits in a row then show as 19 zeros.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
#: 19 digits in a row: a number orjson may not read exactly (beyond 64 bits).
_LONG_NUMBER = b"0" * 19


@dataclass(frozen=True)
class Parsed:
    """A parsed answer and which encoder must write it back.

    Attributes:
        document: the JSON value, as ``json.loads`` would give it.
        fast: read by orjson (write it with orjson too).
    """

    document: Any
    fast: bool


def loads(raw: bytes) -> Parsed:
    """Parse an answer's body.

    Raises:
        ValueError: not JSON (``json.JSONDecodeError`` or ``UnicodeDecodeError``), as ``json.loads`` would.
        RecursionError: nested deeper than the standard library parses.
    """
    if _LONG_NUMBER not in raw.translate(_DIGITS_ONLY):  # a C-speed scan (a regex backtracks on every digit)
        try:
            return Parsed(orjson.loads(raw), True)
        except orjson.JSONDecodeError:
            pass  # maybe something only the standard library reads (NaN, UTF-16...): ask it
    return Parsed(json.loads(raw), False)


def dumps(parsed: Parsed) -> bytes:
    """The (rewritten) document as UTF-8 JSON, by the encoder that read it."""
    if parsed.fast:
        try:
            return orjson.dumps(parsed.document)
        except TypeError:  # a value a rewrite put there that orjson does not write
            pass
    return json.dumps(parsed.document, ensure_ascii=False).encode("utf-8")


def plain(parsed: Parsed) -> bytes | None:
    """An orjson-read document's text without escapes (but of quotes, backslashes and control
    characters), as UTF-8: what a search for a URL or a member name must look at, whatever
    escapes or encoding the original used. None when orjson cannot write it (nested deeper than 255).

    Raises:
        ValueError: ``parsed`` was not read by orjson.
    """
    if not parsed.fast:
        raise ValueError("only an orjson-read document has a plain text")
    try:
        return orjson.dumps(parsed.document)
    except TypeError:  # orjson writes at most 255 levels (it reads 1024)
        return None
