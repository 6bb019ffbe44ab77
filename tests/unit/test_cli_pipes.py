"""``wmsgate ... | head``: a reader that stops early ends the command quietly (no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# a command whose reader has gone away: writing raises BrokenPipeError
_SCRIPT = """
import sys
import wmsgate.cli as cli
def gone(_args):
    raise BrokenPipeError(32, "Broken pipe")
cli.cmd_realm = gone
sys.exit(cli.main(["realm"]))
"""


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    out = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 141, out.stderr  # 128 + SIGPIPE, as shell tools report it
    assert "Traceback" not in out.stderr
