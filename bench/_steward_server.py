"""Serve the Steward API the way `steward server` does: one uvicorn process, one event loop.

Usage: python bench/_steward_server.py HOME DATABASE_URL PORT  (an empty DATABASE_URL means
the SQLite default under HOME).
"""

from __future__ import annotations

import sys

from steward.api.app import create_app
from steward.cli.server import run_api
from steward.settings import Settings


def main() -> None:
    home, database_url, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    database = {"url": database_url} if database_url else {}
    settings = Settings(home=home, url=None, database=database)
    # no start-up lines
    run_api(create_app(settings), settings, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
