"""The catalog of the gateway's own refusals: every entry is bilingual and fills in its values."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from authorizer.messages import CATALOG, TEXTS
from proxy.responses import refusal
from wmsgate.tools import REPO

_CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("code", sorted(CATALOG))
def test_every_refusal_is_bilingual_and_fills_in_its_values(code: str) -> None:
    message = CATALOG[code]
    names = {n for _, n, _, _ in string.Formatter().parse(message.zh + message.en) if n}
    refused = refusal(code, **{n: f"<{n}>" for n in names})
    assert refused.status == message.status and 400 <= refused.status <= 599
    assert _CJK.search(refused.zh) and not _CJK.search(refused.en.replace("<", "").replace(">", ""))
    assert all(f"<{n}>" in refused.zh + refused.en for n in names)
    assert refused.code == (message.code or code)
    if message.retry_after is not None:
        assert refused.headers["Retry-After"] == str(message.retry_after)


def test_a_missing_value_or_an_unknown_code_is_a_bug_not_a_blank_message() -> None:
    with pytest.raises(KeyError):
        refusal("body_too_large")
    with pytest.raises(KeyError):
        refusal("no_such_code")


@pytest.mark.parametrize("key", sorted(TEXTS))
def test_every_text_is_bilingual(key: str) -> None:
    text = TEXTS[key]
    names = {n for _, n, _, _ in string.Formatter().parse(text.zh + text.en) if n}
    filled = text.format(**{n: f"<{n}>" for n in names})
    assert (_CJK.search(filled.zh) or filled.zh == filled.en) and not _CJK.search(filled.en)


def _string_literals(path: Path) -> list[tuple[int, str]]:
    """Every string constant of a module that is not a docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_the_gateways_words_live_in_the_catalog() -> None:
    """No Chinese text in the gateway's Python outside authorizer/messages.py (templates hold the
    console's labels): a message written in a module would escape the catalog's checks."""
    stray = [f"{path.relative_to(REPO)}:{line}: {value[:40]}"
             for folder in ("authorizer", "proxy") for path in sorted((REPO / folder).rglob("*.py"))
             if path.name != "messages.py" for line, value in _string_literals(path) if _CJK.search(value)]
    assert stray == []
