"""Load from wrk (Debian package ``wrk``), read back as figures: the load generator of the benchmarks.

wrk runs closed-loop: ``connections`` connections send back to back for ``seconds``. For a
fixed offered rate each connection waits ``connections / rate`` between its requests (wrk's
``delay()`` hook), so the rate achieved is a little under the offered one when latency grows;
the achieved rate is printed beside it. Every load stays on 127.0.0.1 and is bounded in time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: A Lua script for wrk: request headers from the environment, pacing, and a machine-readable summary.
_SCRIPT = r"""
local auth = os.getenv("BENCH_AUTHORIZATION")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pause > 0 then
  delay = function() return pause end
end
done = function(summary, latency, requests)
  io.write(string.format("BENCH requests=%d seconds=%.3f errors=%d non2xx=%d p50=%.3f p99=%.3f max=%.3f\n",
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


@dataclass(frozen=True)
class Load:
    """One wrk run: throughput in requests per second, latencies in milliseconds.

    Attributes:
        rps: requests completed per second.
        p50, p99, max: latency percentiles and maximum (ms).
        errors: socket errors (connect, read, write, timeout).
        non2xx: answers with a status outside 2xx/3xx.
        requests: requests completed.
    """

    rps: float
    p50: float
    p99: float
    max: float
    errors: int
    non2xx: int
    requests: int


class WrkMissing(RuntimeError):
    """wrk is not installed."""


def wrk_path() -> str:
    """The wrk binary.

    Raises:
        WrkMissing: not on PATH (the message says how to install it).
    """
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissing("wrk is needed for the benchmarks: apt-get install wrk (Debian; .ci/run installs it)")
    return found


def run_wrk(url: str, seconds: float, connections: int, authorization: str = "", rate: float | None = None,
            threads: int = 1) -> Load:
    """Load ``url`` with wrk and return its figures.

    Args:
        url: a 127.0.0.1 URL (checked: benchmarks never load another host).
        seconds: how long (whole seconds, at least 1).
        connections: open connections.
        authorization: the ``Authorization`` header value, or '' for none.
        rate: offered requests per second (each connection paced), or None for closed loop.
        threads: wrk threads.

    Raises:
        ValueError: ``url`` is not on 127.0.0.0/8.
        RuntimeError: wrk failed or printed no summary.
    """
    host = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[0]
    if not host.startswith("127."):
        raise ValueError(f"benchmarks only load 127.0.0.0/8, not {host}")
    delay_ms = int(connections / rate * 1000) if rate else 0
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_SCRIPT)
    try:
        env = {**os.environ, "BENCH_AUTHORIZATION": authorization, "BENCH_DELAY_MS": str(delay_ms)}
        argv = [wrk_path(), "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
                "--timeout", "10s", "-s", script.name, url]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60, check=False)
    finally:
        Path(script.name).unlink(missing_ok=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout[-500:]} {proc.stderr[-500:]}")
    fields = dict(part.split("=", 1) for part in line.split()[1:])
    requests = int(fields["requests"])
    return Load(rps=requests / float(fields["seconds"]), p50=float(fields["p50"]), p99=float(fields["p99"]),
                max=float(fields["max"]), errors=int(fields["errors"]), non2xx=int(fields["non2xx"]),
                requests=requests)


if __name__ == "__main__":  # a quick manual check: python bench/loadgen.py URL [seconds]
    print(run_wrk(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 3, 8))
