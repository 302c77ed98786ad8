"""Run the gateway: `python -m services.gateway` serves; `python -m services.gateway migrate` migrates.

Every public RPC passes the gate (authentication, policy, rate limits, audit) and is then forwarded
to its owning service or served here (tokens, uploads, webhooks, reveal, audit log, alert feed).
"""

from __future__ import annotations

from pathlib import Path

from services.gateway.bootstrap import serve
from services.gateway.config import Settings
from services.kit import app


def main() -> None:
    app.run("gateway", Path(__file__).parent / "migrations", Settings.from_env, serve)


if __name__ == "__main__":
    main()
