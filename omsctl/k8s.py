"""`omsctl k8s-secrets`: every Secret the dev overlay (deploy/k8s/overlays/dev) reads, as one `List` for
`kubectl apply -f -`, with development values minted the way `make run` mints its own (the same
functions of omsctl.stack) and kept 0600 in a home of their own (default `.oms/k8s-dev`).

Applying the output again changes nothing: the values are minted once per home, so re-applying never
rotates a key under data it sealed. `OMS_HOME=<that home> omsctl token …` mints tokens the dev cluster's
gateway accepts. The databases' passwords are minted here; the in-cluster Postgres creates each
service's role and database with them (overlays/dev/postgres.yaml)."""

from __future__ import annotations

import argparse
import json
import secrets
from pathlib import Path
from typing import Any

from omsctl import stack

NAMESPACE = "oms"
# the dev overlay's Postgres: the Service and port of overlays/dev/postgres.yaml
POSTGRES_HOST = "postgres"
POSTGRES_PORT = 5432
POSTGRES_SECRET = "postgres-credentials"
DATABASE_SERVICES = tuple(spec.name for spec in stack.SERVICES if spec.database)

Object = dict[str, Any]


def postgres_passwords(home: Path) -> dict[str, str]:
    """The superuser's password and one per service role, minted once per home."""
    path = home / "postgres-passwords.json"
    kept: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    wanted = ("postgres", *DATABASE_SERVICES)
    if any(name not in kept for name in wanted):
        home.mkdir(parents=True, exist_ok=True)
        kept = {name: kept.get(name) or secrets.token_urlsafe(24) for name in wanted}
        path.touch(mode=0o600)
        path.write_text(json.dumps(kept))
    return kept


def password_setting(service: str) -> str:
    """The variable the Postgres init script reads a service role's password from."""
    return f"{service.upper()}_PASSWORD"


def secret(name: str, data: dict[str, str], app: str = "") -> Object:
    labels = {"app.kubernetes.io/part-of": "oms", **({"app.kubernetes.io/name": app} if app else {})}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "stringData": data,
    }


def dev_secrets(home: Path) -> list[Object]:
    passwords = postgres_passwords(home)
    items = [
        secret(
            POSTGRES_SECRET,
            {
                "POSTGRES_PASSWORD": passwords["postgres"],
                **{password_setting(name): passwords[name] for name in DATABASE_SERVICES},
            },
            "postgres",
        )
    ]
    for name in DATABASE_SERVICES:
        url = f"postgresql://{name}:{passwords[name]}@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
        items.append(secret(f"{name}-db", {"DATABASE_URL": url}, name))
    pii = stack.pii_settings(home)
    edge = stack.edge_settings(home)
    payments = stack.payment_settings(home)
    for spec in stack.SERVICES:
        if spec.pii:
            items.append(
                secret(f"{spec.name}-pii", {name: pii[name] for name in stack.PII_SETTINGS}, spec.name)
            )
        if spec.edge:
            auth = {name: edge[name] for name in stack.EDGE_SETTINGS}
            items.append(secret(f"{spec.name}-auth", auth, spec.name))
            sms = {
                f"ALERT_SMS_{name}": stack.SMS_ACCOUNT[name]
                for name in ("ACCESS_KEY_ID", "ACCESS_KEY_SECRET")
            }
            items.append(secret(f"{spec.name}-sms", sms, spec.name))
        if spec.carriers:
            items.append(secret(f"{spec.name}-carriers", dict(stack.CARRIER_CREDENTIALS), spec.name))
        if spec.payments:
            client = {f"PAYMENT_{name}": payments[name] for name in stack.PAYMENT_CLIENT_KEYS}
            items.append(secret(f"{spec.name}-payments", client, spec.name))
        items.append(secret(f"{spec.name}-identity", stack.identity_settings(home, spec), spec.name))
    items.append(secret("carrier-push", stack.push_settings(home)))
    # the providers' halves only: the sandbox reads the shared account numbers from aftersales-payments
    sandbox = {
        f"PAYMENT_SANDBOX_{name}": payments[name]
        for name in stack.PAYMENT_SANDBOX_KEYS
        if name not in stack.PAYMENT_CLIENT_KEYS
    }
    items.append(secret("payment-sandbox", sandbox, "payment-sandbox"))
    return items


def add_arguments(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "k8s-secrets",
        help="print the dev overlay's Secrets with development values: `… | kubectl apply -f -`",
    )
    parser.add_argument(
        "--home", type=Path, default=None, help="where the minted values are kept (default .oms/k8s-dev)"
    )


def run(args: argparse.Namespace, oms_home: Path) -> int:
    home = args.home.resolve() if args.home else oms_home / "k8s-dev"
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": dev_secrets(home)}, indent=2))
    return 0
