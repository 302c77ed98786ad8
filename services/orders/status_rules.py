"""Reading the status rules file: YAML (refusing duplicate keys) into the anchor's rule book.

The rules themselves, and every check of them, are pure domain code (`domain/anchor.py`); only the
parsing of the file's text lives here, because the domain imports nothing outside the standard library.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any, Final

import yaml

from services.orders.domain.anchor import InvalidRules, RuleBook, rules_from_document

# the rules that ship with the service
DEFAULT_RULES_PATH: Final = Path(__file__).resolve().parent / "status_rules.yaml"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: a second `status:` silently winning is a wrong rule."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # keys from a `<<: *anchor` merge may be overridden; that is what merges are for
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def strict_yaml(text: str) -> Any:
    """YAML as plain data (a SafeLoader: no arbitrary objects), refusing duplicate keys."""
    return yaml.load(text, Loader=_StrictLoader)


def load_rules(text: str) -> RuleBook:
    """Parse and validate a rules document; anything doubtful is refused with InvalidRules."""
    try:
        document = strict_yaml(text)
    except yaml.YAMLError as error:
        raise InvalidRules(f"not valid YAML: {error}") from None
    return rules_from_document(document)


def shipped_rules() -> RuleBook:
    """The rules that ship with the service."""
    return load_rules(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
