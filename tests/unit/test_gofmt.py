"""The in-process ``sprintf`` gives, byte for byte, what the pinned OPA gives (asked through ``opa eval``)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from authorizer.authz.gofmt import UnsupportedFormat, sprintf
from wmsgate.tools import locate_tools

#: (template, args): the gateway's message shapes, wrong types, missing and extra arguments, %%.
CASES: list[tuple[str, list[Any]]] = [
    ("允许", []),
    ("缺少权限 %s(拥有此权限的角色:%s)", ["orders:delete", "ops_supervisor, warehouse_keeper"]),
    ("资源 %v 不存在", ["SO2024110100999"]),
    ("此操作(%s)需要 %d 秒内的多因素认证(acr=%s)", ["删除订单", 300, "mfa"]),
    ("[%s]", ["HF, SH"]),
    ("%d", [7]),
    ("%d", [-9223372036854775808]),
    ("%v and %v", [42, "x"]),
    ("100%% done", []),
    ("%s%%%s", ["a", "b"]),
    ("%d", ["not a number"]),
    ("%s", [300]),
    ("%s and %s", ["only one"]),
    ("%d %d", []),
    ("%s", ["one", "two", 3]),
    ("no verbs", ["extra"]),
    ("emoji 📦 %s 仓", ["合肥"]),
    ("", []),
    ("资源 %v 不存在", [None]),
    ("%s %v %d", [True, False, None]),
    ("%s", [None, True]),
]


@pytest.fixture(scope="module")
def opa_answers() -> list[str]:
    """What the pinned OPA's sprintf returns for every case (one ``opa eval``)."""
    calls = ", ".join(f"sprintf({json.dumps(t, ensure_ascii=False)}, {json.dumps(a, ensure_ascii=False)})"
                      for t, a in CASES)
    proc = subprocess.run([str(locate_tools().opa), "eval", "--format", "json", f"[{calls}]"],
                          capture_output=True, text=True, check=True, timeout=60)
    answers: list[str] = json.loads(proc.stdout)["result"][0]["expressions"][0]["value"]
    assert len(answers) == len(CASES)
    return answers


@pytest.mark.parametrize("index", range(len(CASES)), ids=[repr(t)[:30] for t, _ in CASES])
def test_sprintf_matches_opa(index: int, opa_answers: list[str]) -> None:
    template, args = CASES[index]
    assert sprintf(template, args) == opa_answers[index]


@pytest.mark.parametrize(("template", "args"), [
    ("%x", [255]),          # other verbs
    ("%5s", ["a"]),         # widths and flags
    ("%.2f", [1.5]),
    ("%v", [1.5]),          # floats, arrays, objects, booleans, null as arguments
    ("%v", [["a"]]),
    ("%v", [{"a": 1}]),
    ("%d", [2**63]),        # beyond int64 (a big.Int in OPA)
    ("trailing %", []),
])
def test_what_is_not_reproduced_exactly_is_refused(template: str, args: list[Any]) -> None:
    with pytest.raises(UnsupportedFormat):
        sprintf(template, args)
