"""The catalog of the gateway's own refusals: every entry is bilingual and fills in its values."""

from __future__ import annotations

import re
import string

import pytest

from authorizer.messages import CATALOG
from proxy.responses import refusal

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
