"""Alembic environment for the orders database."""

from services.kit.migrate import run_env
from services.orders.store import metadata

run_env(metadata)
