"""``python -m alerting --config config/alerting.yaml``: run the alerting service."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from alerting.app import create_app
from alerting.config import load_alerting_config
from alerting.rules import RulesError
from authorizer.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load the configuration, serve until interrupted. Returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m alerting", description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("config/alerting.yaml"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Keycloak poll otherwise
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: where is it stuck?
    try:
        config = load_alerting_config(args.config)
        app = create_app(config)
    except (ConfigError, RulesError) as exc:
        print(f"alerting: {exc}", file=sys.stderr)
        return 2
    web.run_app(app, host=config.host, port=config.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
