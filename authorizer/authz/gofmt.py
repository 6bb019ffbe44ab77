"""Rego's ``sprintf`` as OPA computes it, for the policy evaluated in-process (Wasm).

OPA's Wasm compiler leaves ``sprintf`` to the host. OPA's own implementation
(``v1/topdown/strings.go``, ``builtinSprintf``) turns each argument into a Go value
(an integer as ``int64`` or ``big.Int``, a number with a fraction or exponent as
``float64``, a string as ``string``, anything else as its Rego text) and calls Go's
``fmt.Sprintf``. This module does the same for the verbs the gateway's messages use:
``%s``, ``%v``, ``%d`` and ``%%``, with strings, integers, null and booleans as arguments
(the last two as their Rego text, as OPA passes them), with Go's answers for a wrong type
(``%!d(string=x)``), a missing argument (``%!s(MISSING)``) and extra arguments
(``%!(EXTRA int64=5)``). Anything else (flags, widths, other verbs, fractional numbers,
arrays, objects as arguments) raises :class:`UnsupportedFormat`, so an in-process decision
never differs silently from the OPA sidecar's: the PDP then fails closed.
"""

from __future__ import annotations

import re
from typing import Any

_VERB = re.compile(r"%(.)", re.DOTALL)
#: 2**63: integers from -2**63 to 2**63-1 are Go int64s in OPA (larger ones are big.Int, not reproduced).
_INT64 = 2**63


class UnsupportedFormat(ValueError):
    """The format or an argument is outside what this implementation reproduces exactly."""


def _as_go(value: Any) -> Any:
    """The argument as OPA hands it to Go: null and booleans as their Rego text (a Go string)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _go_type(value: Any) -> str:
    if isinstance(value, (list, dict, float)):
        raise UnsupportedFormat(f"sprintf argument {value!r}: arrays, objects and fractional numbers are not "
                                "formatted in-process")
    if isinstance(value, int):
        if not -_INT64 <= value < _INT64:
            raise UnsupportedFormat(f"sprintf argument {value}: beyond int64")
        return "int64"
    if isinstance(value, str):
        return "string"
    raise UnsupportedFormat(f"sprintf argument of type {type(value).__name__}")


def _one(verb: str, value: Any) -> str:
    kind = _go_type(value)
    if verb == "v":
        return str(value)
    if verb == "s" and kind == "string":
        return str(value)
    if verb == "d" and kind != "string":
        return str(value)
    return f"%!{verb}({kind}={value})"


def sprintf(template: str, args: list[Any]) -> str:
    """Format ``args`` into ``template`` as OPA's ``sprintf`` (Go's ``fmt.Sprintf``) would.

    Args:
        template: the format, e.g. ``"缺少权限 %s(拥有此权限的角色:%s)"``.
        args: the argument array as JSON values (strings, integers, null, booleans).

    Returns:
        The formatted string, byte for byte what OPA returns for the same call.

    Raises:
        UnsupportedFormat: a flag, width, precision or verb other than ``s v d %``, or an
            argument that is an array, an object or a fractional number.
    """
    out: list[str] = []
    used = 0
    position = 0
    for match in _VERB.finditer(template):
        out.append(template[position:match.start()])
        position = match.end()
        verb = match.group(1)
        if verb == "%":
            out.append("%")
            continue
        if verb not in "svd":
            raise UnsupportedFormat(f"sprintf verb %{verb} is not reproduced in-process")
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_one(verb, _as_go(args[used])))
        used += 1
    if "%" in template[position:]:  # a lone trailing % (Go: %!(NOVERB))
        raise UnsupportedFormat("sprintf format ends with a lone %")
    out.append(template[position:])
    if used < len(args):
        extra = ", ".join(f"{_go_type(a)}={a}" for a in map(_as_go, args[used:]))
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
