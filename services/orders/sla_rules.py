"""Reading the SLA rules file (YAML, duplicate keys refused) into the domain's SLA book."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import yaml

from services.orders.domain.sla import InvalidSla, SlaBook, book_from_document
from services.orders.status_rules import strict_yaml

DEFAULT_SLA_PATH: Final = Path(__file__).resolve().parent / "sla_rules.yaml"


def load_sla(text: str) -> SlaBook:
    try:
        document = strict_yaml(text)
    except yaml.YAMLError as error:
        raise InvalidSla(f"not valid YAML: {error}") from None
    return book_from_document(document)


def shipped_sla() -> SlaBook:
    return load_sla(DEFAULT_SLA_PATH.read_text(encoding="utf-8"))
