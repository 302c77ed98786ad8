"""Serve the SMS sandbox: ``python -m sandboxes.sms --port 18040``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from sandboxes.sms.config import parse
from sandboxes.sms.server import serve


def main(argv: list[str] | None = None) -> None:
    settings = parse(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )

    def ready(port: int) -> None:
        # one line on stdout, so a parent process started with --port 0 learns the port
        print(f"listening on http://{settings.host}:{port}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, ready))


if __name__ == "__main__":
    main()
