"""Run the demo WMS: ``python -m demo_wms --db PATH [--reseed] [--port 8090]``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aiohttp import web

from demo_wms.app import create_app
from demo_wms.seed import create_database


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, seed the database if asked or missing, and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="demo_wms", description="Demo legacy WMS (no authentication).")
    parser.add_argument("--db", type=Path, required=True, help="SQLite file")
    parser.add_argument("--reseed", action="store_true", help="re-create the database from the fixed seed")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--access-log", type=Path, default=None, help="JSON-lines access log file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.reseed or not args.db.exists():
        args.db.parent.mkdir(parents=True, exist_ok=True)
        create_database(args.db)
    web.run_app(create_app(args.db, args.access_log), host=args.host, port=args.port, print=None,
                access_log=None)


if __name__ == "__main__":
    main()
