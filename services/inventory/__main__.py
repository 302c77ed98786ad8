"""Run the inventory service.

`python -m services.inventory` serves gRPC; `python -m services.inventory migrate` migrates its database.
"""

from __future__ import annotations

from pathlib import Path

from services.inventory import bootstrap
from services.inventory.config import Settings
from services.kit import app


def main() -> None:
    app.run("inventory", Path(__file__).parent / "migrations", Settings.from_env, bootstrap.serve)


if __name__ == "__main__":
    main()
