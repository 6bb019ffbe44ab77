"""User-facing Chinese text is zh-CN: simplified characters, no stray romanization."""

from __future__ import annotations

import re
import subprocess

import opencc

from wmsgate.tools import REPO

CJK = re.compile(r"[\u4e00-\u9fff]")
PINYIN_NOTE = re.compile(r"[\u4e00-\u9fff]\([a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]+\)")
SUFFIXES = (".py", ".yaml", ".yml", ".json", ".rego", ".md", ".html")


def _tracked_text_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.split()
    return [f for f in out if f.endswith(SUFFIXES)]


def test_chinese_text_is_simplified_and_has_no_romanization_notes() -> None:
    to_simplified = opencc.OpenCC("t2s")
    problems = []
    for name in _tracked_text_files():
        path = REPO / name
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not CJK.search(line):
                continue
            if PINYIN_NOTE.search(line) or to_simplified.convert(line) != line:
                problems.append(f"{name}:{number}: {line.strip()[:80]}")
    assert not problems, "zh-CN text must be simplified Chinese:\n" + "\n".join(problems[:20])
