"""Serve the payment sandbox: ``python -m sandboxes.payments --port 18020``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from sandboxes.payments.config import parse
from sandboxes.payments.server import serve


def main(argv: list[str] | None = None) -> None:
    settings = parse(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if settings.credentials.generated:
        logging.getLogger("sandboxes.payments").warning(
            "keys not given were generated (%s); their merchant halves: GET /_control/credentials",
            ", ".join(sorted(settings.credentials.generated)),
        )

    def ready(port: int) -> None:
        # one line on stdout, so a parent process started with --port 0 learns the port
        print(f"listening on http://{settings.host}:{port}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, ready))


if __name__ == "__main__":
    main()
