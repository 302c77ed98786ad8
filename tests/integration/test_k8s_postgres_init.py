"""The dev overlay's Postgres init script (deploy/k8s/overlays/dev/postgres.yaml) run as the image's
entrypoint runs it, against a Postgres of its own, with the passwords `omsctl k8s-secrets` mints: each
service's role owns its database, can migrate it, and cannot connect to another service's."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import yaml

from omsctl import embedded, k8s
from services.kit.db import with_database
from services.kit.migrate import upgrade

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
ROOT = Path(__file__).resolve().parents[2]
POSTGRES_YAML = ROOT / "deploy" / "k8s" / "overlays" / "dev" / "postgres.yaml"


def init_script() -> str:
    (config,) = [d for d in yaml.safe_load_all(POSTGRES_YAML.read_text()) if d and d["kind"] == "ConfigMap"]
    (script,) = config["data"].values()
    return str(script)


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[embedded.EmbeddedPostgres]:
    server = embedded.EmbeddedPostgres(tmp_path / "postgres", tmp_path / "logs", durable=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        embedded.remove_outside(tmp_path / "postgres")


async def test_the_init_script_gives_each_service_its_own_role_and_database(
    postgres: embedded.EmbeddedPostgres, tmp_path: Path
) -> None:
    credentials = {s["metadata"]["name"]: s["stringData"] for s in k8s.dev_secrets(tmp_path / "k8s")}
    script = tmp_path / "create-service-databases.sh"
    script.write_text(init_script())
    psql = embedded._postgres_install() / "bin"
    env = {
        "PATH": f"{psql}:{os.environ['PATH']}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres.port),
        "POSTGRES_USER": "postgres",
        **credentials[k8s.POSTGRES_SECRET],
    }
    done = await asyncio.to_thread(
        subprocess.run, ["sh", str(script)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr

    admin = await asyncpg.connect(postgres.url)
    try:
        owners = dict(
            await admin.fetch(
                "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = ANY($1::text[])",
                list(k8s.DATABASE_SERVICES),
            )
        )
    finally:
        await admin.close()
    assert owners == {name: name for name in k8s.DATABASE_SERVICES}

    # each service's URL from its <service>-db Secret, pointed at this server instead of the Service
    def url(service: str) -> str:
        given = credentials[f"{service}-db"]["DATABASE_URL"]
        return given.replace(f"@{k8s.POSTGRES_HOST}:{k8s.POSTGRES_PORT}/", f"@127.0.0.1:{postgres.port}/")

    await asyncio.to_thread(upgrade, ROOT / "services" / "inventory" / "migrations", url("inventory"))
    conn = await asyncpg.connect(url("inventory"))
    try:
        assert await conn.fetchval("SELECT count(*) FROM alembic_version") == 1
    finally:
        await conn.close()
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await asyncpg.connect(with_database(url("routing"), "inventory"))
