"""Run the orders service.

`python -m services.orders` serves gRPC and runs the process manager, the payment retries, the
daily drift report and the key-rotation re-sealing; `python -m services.orders migrate` migrates.
"""

from __future__ import annotations

from pathlib import Path

from services.kit import app
from services.orders import bootstrap
from services.orders.config import Settings


def main() -> None:
    app.run("orders", Path(__file__).parent / "migrations", Settings.from_env, bootstrap.serve)


if __name__ == "__main__":
    main()
