"""Plain-SQL reads and writes of model rows, for the statements every reply runs.

A streamed reply runs the same few statements each time: it locks the
conversation, reads its history and stores the message pair and a budget hold
when it is sent, checkpoints every few seconds, and stores the final message
and its ledger row at the end. Through the ORM, building each statement cost
ten to twenty times what the database took to run it, and at 50 sends a second
that was a third of the web process's CPU (7 ms of it per reply, measured at
200 streams). These functions read and write the same values as the ORM (each
field converts its own: UUIDs, JSON, dates, decimals, defaults, `auto_now`)
without building a query, on PostgreSQL and SQLite both. Everything else keeps
the ORM.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper

ModelT = TypeVar("ModelT", bound=models.Model)


def _db() -> BaseDatabaseWrapper:
    # The connection itself, not the `django.db.connection` proxy: the proxy looks
    # the connection up again on every attribute, hundreds of times a statement here.
    return connections[DEFAULT_DB_ALIAS]


def rows_insert(*objs: models.Model) -> None:
    """INSERT new instances of one model in one statement, as `bulk_create` would.

    Fields take their values from the instances (`auto_now` / `auto_now_add` ones
    are set now); an auto-increment primary key left empty is read back. The
    instances are saved afterwards: a later `save()` updates them.
    """
    if not objs:
        return
    db = _db()
    quote = db.ops.quote_name
    meta = type(objs[0])._meta
    pk = meta.pk
    read_back_pk = isinstance(pk, models.AutoField) and getattr(objs[0], pk.attname) is None
    fields = [f for f in meta.concrete_fields if not (read_back_pk and f is pk)]
    params: list[Any] = []
    for obj in objs:
        for field in fields:
            params.append(field.get_db_prep_save(field.pre_save(obj, add=True), db))
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES {', '.join([row] * len(objs))}"
    )
    if read_back_pk:
        sql += f" RETURNING {quote(pk.column)}"
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        if read_back_pk:
            # One row back per row in, in order (PostgreSQL and SQLite both).
            for obj, (value,) in zip(objs, cursor.fetchall(), strict=True):
                setattr(obj, pk.attname, value)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = db.alias


def _where(db: BaseDatabaseWrapper, meta, where: Mapping[str, Any]) -> tuple[str, list[Any]]:
    conditions: list[str] = []
    params: list[Any] = []
    for name, value in where.items():
        field = meta.get_field(name)
        column = db.ops.quote_name(field.column)
        if value is None:
            conditions.append(f"{column} IS NULL")
        elif isinstance(value, Collection) and not isinstance(value, str):
            conditions.append(f"{column} IN ({', '.join(['%s'] * len(value))})")
            params.extend(field.get_db_prep_value(v, db) for v in value)
        else:
            conditions.append(f"{column} = %s")
            params.append(field.get_db_prep_value(value, db))
    return " AND ".join(conditions) or "1 = 1", params


def rows_update(
    model: type[models.Model], values: Mapping[str, Any], *, where: Mapping[str, Any]
) -> int:
    """UPDATE the rows of `model` that match `where`; returns how many matched.

    `values` and `where` are keyed by field name (a foreign key by its `_id`
    name). In `where`, None matches NULL and a list, tuple or set matches any of
    its values; everything else is equality.
    """
    db = _db()
    meta = model._meta
    assignments: list[str] = []
    params: list[Any] = []
    for name, value in values.items():
        field = meta.get_field(name)
        assignments.append(f"{db.ops.quote_name(field.column)} = %s")
        params.append(field.get_db_prep_save(value, db))
    conditions, where_params = _where(db, meta, where)
    sql = (
        f"UPDATE {db.ops.quote_name(meta.db_table)} SET {', '.join(assignments)} WHERE {conditions}"
    )
    with db.cursor() as cursor:
        cursor.execute(sql, params + where_params)
        return cursor.rowcount


def rows_select(
    model: type[ModelT],
    names: Sequence[str],
    *,
    where: Mapping[str, Any],
    order_by: str = "",
    for_update: bool = False,
) -> list[ModelT]:
    """Instances of `model` with only the fields `names` loaded (the others load on
    access, as with `.only()`), matching `where` as in `rows_update`.

    `order_by`: a field name, "-name" for descending. `for_update`: lock the rows
    until the transaction ends (SQLite has no row locks: its transactions take
    the database's write lock up front, see the settings).
    """
    db = _db()
    meta = model._meta
    quote = db.ops.quote_name
    # In the model's field order: `from_db` takes the values in that order.
    wanted = {meta.get_field(name) for name in names}
    names = [f.name for f in meta.concrete_fields if f in wanted]
    columns = ", ".join(quote(meta.get_field(name).column) for name in names)
    conditions, params = _where(db, meta, where)
    sql = f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {conditions}"
    if order_by:
        field = meta.get_field(order_by.lstrip("-"))
        sql += f" ORDER BY {quote(field.column)}{' DESC' if order_by.startswith('-') else ''}"
    if for_update and db.features.has_select_for_update:
        sql += " FOR UPDATE"
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    attnames = [meta.get_field(name).attname for name in names]
    readers = _readers(db, model, names)
    return [model.from_db(db.alias, attnames, _read(db, readers, row)) for row in rows]


def row_values(
    model: type[models.Model],
    names: Sequence[str],
    row: Sequence[Any],
    *,
    db: BaseDatabaseWrapper | None = None,
) -> list[Any]:
    """One row of a plain SELECT of `names`, converted as the ORM reads it (aware
    datetimes, dates and JSON on SQLite too)."""
    db = db or _db()
    return _read(db, _readers(db, model, names), row)


def _readers(db: BaseDatabaseWrapper, model: type[models.Model], names: Sequence[str]) -> list:
    """Per column: the expression and the converters the ORM would apply to it."""
    meta = model._meta
    readers = []
    for name in names:
        field = meta.get_field(name)
        column = field.get_col(meta.db_table)
        readers.append((column, db.ops.get_db_converters(column) + field.get_db_converters(db)))
    return readers


def _read(db: BaseDatabaseWrapper, readers: list, row: Sequence[Any]) -> list[Any]:
    values = []
    for (column, converters), value in zip(readers, row, strict=True):
        for convert in converters:
            value = convert(value, column, db)
        values.append(value)
    return values
