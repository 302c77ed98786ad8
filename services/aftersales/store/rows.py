"""Domain objects ↔ JSON documents, for the `state` column of a ticket and the rule sets' rows.

One codec for every frozen dataclass of the domain, driven by the dataclasses' own fields and type
hints (`dataclasses.fields`, `typing.get_type_hints`), compiled once per type:

- a dataclass → an object of its fields (a field left out of equality, like a ticket's recorded
  `events`, is not state and is not written; reading it back gives its default);
- an enum → its value; a datetime → ISO 8601 with its offset (a naive one is refused both ways);
- int, str, bool → themselves (checked on the way back: a bool is not an int);
- `X | None` → null or X; `tuple[X, ...]`, `list[X]`, `frozenset[X]` → an array;
- `dict[K, V]` / `Mapping[K, V]` → an object (keys int, str or an enum, written as strings);
- `Any` → the value as it is (it must already be JSON, e.g. a rule set's document).

Reading back, a field missing from the document takes its default (a field added later) and a key
the dataclass no longer has is ignored (a field removed later). A document that does not fit its
type raises `DocumentError` with the path to the bad value.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from services.aftersales.domain.approval import RuleSetStatus, RuleSetVersion
from services.aftersales.domain.tickets import Ticket

T = TypeVar("T")
Codec = Callable[[Any], Any]


class DocumentError(ValueError):
    """A stored document that does not fit the type it is read as (the path says where)."""

    def __init__(self, problem: str, path: str = "") -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.problem = problem
        self.path = path


def _fail(expected: str, value: Any) -> DocumentError:
    return DocumentError(f"expected {expected}, found {type(value).__name__} {value!r:.60}")


# ---- writing


@functools.cache
def encoder(tp: Any) -> Codec:
    """The function that writes a value of type `tp` as JSON (dicts, lists, str, int, bool, None)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return _same
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_encoder(tp)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return _enum_value
    if tp is datetime:
        return _datetime_text
    if tp in (bool, int, str):
        return _same
    if origin in (typing.Union, types.UnionType):
        inner = encoder(_optional_of(tp, args))
        return lambda value: None if value is None else inner(value)
    if origin in (tuple, list, frozenset, set):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            items = [encoder(arg) for arg in args]
            return lambda value: [write(item) for write, item in zip(items, value, strict=True)]
        item = encoder(args[0])
        if origin in (frozenset, set):
            return lambda value: sorted((item(v) for v in value), key=repr)
        return lambda value: [item(v) for v in value]
    if origin in (dict, Mapping):
        key, item = _key_encoder(args[0]), encoder(args[1])
        return lambda value: {key(k): item(v) for k, v in value.items()}
    raise TypeError(f"no JSON codec for {tp!r}")


def _same(value: Any) -> Any:
    return value


def _enum_value(value: Enum) -> Any:
    return value.value


def _datetime_text(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"{value!r} carries no time zone: stored times always do")
    return value.isoformat()


def _key_encoder(tp: Any) -> Codec:
    if isinstance(tp, type) and issubclass(tp, Enum):
        return lambda key: str(key.value)
    if tp in (int, str):
        return str
    raise TypeError(f"no JSON object key for {tp!r}")


def _optional_of(tp: Any, args: tuple[Any, ...]) -> Any:
    present = [arg for arg in args if arg is not type(None)]
    if len(present) != 1 or len(args) != 2:
        raise TypeError(f"only `X | None` unions have a JSON codec, not {tp!r}")
    return present[0]


def _state_fields(cls: type) -> list[tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.compare and f.init]


def _dataclass_encoder(cls: type) -> Codec:
    plan = [(f.name, encoder(tp)) for f, tp in _state_fields(cls)]

    def write(value: Any) -> dict[str, Any]:
        return {name: encode(getattr(value, name)) for name, encode in plan}

    return write


# ---- reading


@functools.cache
def decoder(tp: Any) -> Codec:
    """The function that reads a value of type `tp` back from what `encoder(tp)` wrote."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return _same
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_decoder(tp)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return _enum_decoder(tp)
    if tp is datetime:
        return _read_datetime
    if tp is bool:
        return _read_bool
    if tp is int:
        return _read_int
    if tp is str:
        return _read_str
    if origin in (typing.Union, types.UnionType):
        inner = decoder(_optional_of(tp, args))
        return lambda data: None if data is None else inner(data)
    if origin in (tuple, list, frozenset, set):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            items = [decoder(arg) for arg in args]

            def fixed(data: Any) -> tuple[Any, ...]:
                if not isinstance(data, list) or len(data) != len(items):
                    raise _fail(f"an array of {len(items)}", data)
                pairs = enumerate(zip(items, data, strict=True))
                return tuple(_at(i, read, item) for i, (read, item) in pairs)

            return fixed
        item = decoder(args[0])
        collect: Callable[[Any], Any] = {tuple: tuple, list: list, frozenset: frozenset, set: set}[origin]

        def many(data: Any) -> Any:
            if not isinstance(data, list):
                raise _fail("an array", data)
            return collect(_at(i, item, value) for i, value in enumerate(data))

        return many
    if origin in (dict, Mapping):
        key, item = _key_decoder(args[0]), decoder(args[1])

        def mapping(data: Any) -> dict[Any, Any]:
            if not isinstance(data, dict):
                raise _fail("an object", data)
            return {_at(k, key, k): _at(k, item, v) for k, v in data.items()}

        return mapping
    raise TypeError(f"no JSON codec for {tp!r}")


def _at(where: Any, read: Codec, data: Any) -> Any:
    """`read(data)`, a DocumentError's path starting with `where` (an array's index or a name)."""
    try:
        return read(data)
    except DocumentError as error:
        step = f"[{where}]" if isinstance(where, int) else f".{where}"
        raise DocumentError(error.problem, step + error.path) from None


def _enum_decoder(cls: type[Enum]) -> Codec:
    def read(data: Any) -> Enum:
        try:
            return cls(data)
        except ValueError:
            raise _fail(f"a {cls.__name__} ({', '.join(str(m.value) for m in cls)})", data) from None

    return read


def _read_datetime(data: Any) -> datetime:
    if not isinstance(data, str):
        raise _fail("an ISO 8601 time", data)
    try:
        moment = datetime.fromisoformat(data)
    except ValueError:
        raise _fail("an ISO 8601 time", data) from None
    if moment.tzinfo is None:
        raise _fail("a time with its offset", data)
    return moment


def _read_bool(data: Any) -> bool:
    if not isinstance(data, bool):
        raise _fail("true or false", data)
    return data


def _read_int(data: Any) -> int:
    if not isinstance(data, int) or isinstance(data, bool):
        raise _fail("an integer", data)
    return data


def _read_str(data: Any) -> str:
    if not isinstance(data, str):
        raise _fail("a string", data)
    return data


def _key_decoder(tp: Any) -> Codec:
    if isinstance(tp, type) and issubclass(tp, Enum):
        return _enum_decoder(tp)
    if tp is str:
        return _read_str

    def read_int(key: str) -> int:
        try:
            return int(key)
        except ValueError:
            raise _fail("an integer key", key) from None

    if tp is int:
        return read_int
    raise TypeError(f"no JSON object key for {tp!r}")


def _dataclass_decoder(cls: type) -> Codec:
    plan = [
        (
            f.name,
            decoder(tp),
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING,
        )
        for f, tp in _state_fields(cls)
    ]

    def read(data: Any) -> Any:
        if not isinstance(data, dict):
            raise _fail(f"a {cls.__name__} object", data)
        values: dict[str, Any] = {}
        for name, decode, optional in plan:
            if name in data:
                values[name] = _at(name, decode, data[name])
            elif not optional:
                raise DocumentError("missing", f".{name}")
        return cls(**values)

    return read


def to_document(value: Any, tp: Any = None) -> Any:
    """`value` as JSON, written as type `tp` (its own class when not given)."""
    kind: Any = type(value) if tp is None else tp
    return encoder(kind)(value)


def from_document(tp: type[T], data: Any) -> T:
    """A `tp` read back from `to_document`'s JSON; DocumentError naming the path when it does not fit."""
    try:
        kind: Any = tp
        value: T = decoder(kind)(data)
    except DocumentError as error:
        raise DocumentError(error.problem, tp.__name__ + error.path) from None
    return value


# ---- tickets


def ticket_document(ticket: Ticket) -> dict[str, Any]:
    """The whole ticket as its `state` column holds it (its recorded events are not state)."""
    document: dict[str, Any] = encoder(Ticket)(ticket)
    return document


def ticket_from_document(document: Any) -> Ticket:
    return from_document(Ticket, document)


# ---- rule sets


def rule_set_row(version: RuleSetVersion, created_by: str) -> dict[str, Any]:
    return {
        "version": version.version,
        "status": version.status.value,
        "document": version.document,
        "note": version.note,
        "created_by": created_by,
        "created_at": version.created_at,
        "activated_at": version.activated_at,
    }


def rule_set_version(row: Mapping[Any, Any]) -> RuleSetVersion:
    return RuleSetVersion(
        version=row["version"],
        status=RuleSetStatus(row["status"]),
        document=dict(row["document"]),
        note=row["note"],
        created_at=row["created_at"],
        activated_at=row["activated_at"],
    )
