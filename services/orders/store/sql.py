"""Statements written from the table definitions, so a column is named only where it is defined.

Many rows go in one round trip as a JSON document unpacked by `jsonb_to_recordset`, typed by the
columns themselves; binary columns travel as base64.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Column, LargeBinary, Table
from sqlalchemy.dialects import postgresql

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


def _type(column: Column[object]) -> str:
    if isinstance(column.type, LargeBinary):
        return "text"
    return str(column.type.compile(dialect=_DIALECT))


def _value(column: Column[object]) -> str:
    return (
        f"decode(x.{column.name}, 'base64')" if isinstance(column.type, LargeBinary) else f"x.{column.name}"
    )


def recordset(table: Table, names: Sequence[str], param: str, extra: Sequence[str] = ()) -> str:
    """`jsonb_to_recordset(:param) AS x(...)`, each named column typed as the table declares it;
    `extra` are further fields of the document that are not columns (e.g. `position int`)."""
    typed = [f"{name} {_type(table.c[name])}" for name in names] + list(extra)
    return f"jsonb_to_recordset(CAST(:{param} AS jsonb)) AS x({', '.join(typed)})"


def insert_from(
    table: Table,
    names: Sequence[str],
    param: str,
    *,
    join: str = "",
    extra: Sequence[str] = (),
    ordered: bool = False,
) -> str:
    """INSERT the document's rows into `table`; `join` keeps only rows whose order id the named CTE
    returned; `ordered` inserts them by their `position` field."""
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) "
        f"SELECT {', '.join(_value(table.c[name]) for name in names)} "
        f"FROM {recordset(table, names, param, [*extra, 'position int'] if ordered else extra)}"
    )
    if join:
        sql += f" JOIN {join} ON {join}.order_id = x.order_id"
    if ordered:
        sql += " ORDER BY x.position"
    return sql


def update_from(table: Table, names: Sequence[str], param: str, where: str) -> str:
    """UPDATE `table` to the one row of the document (a list of one), where `where` holds."""
    sets = ", ".join(f"{name} = x.{name}" for name in names)
    return f"UPDATE {table.name} SET {sets} FROM {recordset(table, names, param)} WHERE {where}"
