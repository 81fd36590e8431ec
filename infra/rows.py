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


# `where` keys: a field name for equality (None: IS NULL; a list, tuple or set:
# any of its values), or "name__gt" / "__gte" / "__lt" / "__lte" for a comparison.
_COMPARISONS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _condition(db: BaseDatabaseWrapper, meta, key: str, value: Any) -> tuple[str, list[Any]]:
    name, _, lookup = key.partition("__")
    field = meta.get_field(name)
    column = db.ops.quote_name(field.column)
    if lookup:
        return f"{column} {_COMPARISONS[lookup]} %s", [field.get_db_prep_value(value, db)]
    if value is None:
        return f"{column} IS NULL", []
    if isinstance(value, Collection) and not isinstance(value, str):
        return (
            f"{column} IN ({', '.join(['%s'] * len(value))})",
            [field.get_db_prep_value(v, db) for v in value],
        )
    return f"{column} = %s", [field.get_db_prep_value(value, db)]


def _where(
    db: BaseDatabaseWrapper,
    meta,
    where: Mapping[str, Any] | None,
    any_of: Mapping[str, Any] | None = None,
) -> tuple[str, list[Any]]:
    """Every condition of `where`, and at least one of `any_of` (when given; an
    empty `any_of` matches nothing)."""
    conditions: list[str] = []
    params: list[Any] = []
    for key, value in (where or {}).items():
        sql, values = _condition(db, meta, key, value)
        conditions.append(sql)
        params.extend(values)
    if any_of is not None:
        alternatives: list[str] = []
        for key, value in any_of.items():
            sql, values = _condition(db, meta, key, value)
            alternatives.append(sql)
            params.extend(values)
        conditions.append(f"({' OR '.join(alternatives)})" if alternatives else "1 = 0")
    return " AND ".join(conditions) or "1 = 1", params


def rows_update(
    model: type[models.Model], values: Mapping[str, Any], *, where: Mapping[str, Any]
) -> int:
    """UPDATE the rows of `model` that match `where`; returns how many matched.

    `values` and `where` are keyed by field name (a foreign key by its `_id`
    name). In `where`, None matches NULL, a list, tuple or set matches any of
    its values, "name__gte" (gt, lt, lte) compares; everything else is equality.
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
    # In the model's field order: `from_db` takes the values in that order.
    wanted = {meta.get_field(name) for name in names}
    names = [f.name for f in meta.concrete_fields if f in wanted]
    sql, params = _select_sql(db, meta, names, where=where, order_by=order_by)
    if for_update and db.features.has_select_for_update:
        sql += " FOR UPDATE"
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    attnames = [meta.get_field(name).attname for name in names]
    readers = _readers(db, model, names)
    return [model.from_db(db.alias, attnames, _read(db, readers, row)) for row in rows]


def rows_values(
    model: type[models.Model],
    names: Sequence[str],
    *,
    where: Mapping[str, Any] | None = None,
    any_of: Mapping[str, Any] | None = None,
    order_by: str = "",
    limit: int | None = None,
) -> list[list[Any]]:
    """The values of `names`, in that order, of each row matching `where` (as in
    `rows_update`) and, when given, at least one condition of `any_of`: what
    `.filter(...).values_list(*names)` reads, without building a query.

    `order_by`: a field name, "-name" for descending; `limit`: at most that many rows.
    """
    db = _db()
    sql, params = _select_sql(
        db, model._meta, names, where=where, any_of=any_of, order_by=order_by, limit=limit
    )
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    readers = _readers(db, model, names)
    return [_read(db, readers, row) for row in rows]


def rows_count(
    model: type[models.Model],
    *,
    where: Mapping[str, Any] | None = None,
    any_of: Mapping[str, Any] | None = None,
) -> int:
    """How many rows match, as `.filter(...).count()` (conditions as in `rows_values`)."""
    db = _db()
    conditions, params = _where(db, model._meta, where, any_of)
    sql = f"SELECT COUNT(*) FROM {db.ops.quote_name(model._meta.db_table)} WHERE {conditions}"
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def rows_update_returning(
    model: type[models.Model],
    values: Mapping[str, Any],
    *,
    where: Mapping[str, Any],
    returning: Sequence[str],
) -> list[list[Any]]:
    """`rows_update`, and the values of `returning` of each row it updated, in one
    statement (UPDATE ... RETURNING): a guarded update ("where status is still
    open") that also says what it changed, so two racing callers cannot both act.
    """
    db = _db()
    meta = model._meta
    quote = db.ops.quote_name
    assignments: list[str] = []
    params: list[Any] = []
    for name, value in values.items():
        field = meta.get_field(name)
        assignments.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, db))
    conditions, where_params = _where(db, meta, where)
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {', '.join(assignments)} WHERE {conditions} "
        f"RETURNING {_columns(db, meta, returning)}"
    )
    with db.cursor() as cursor:
        cursor.execute(sql, params + where_params)
        rows = cursor.fetchall()
    readers = _readers(db, model, returning)
    return [_read(db, readers, row) for row in rows]


def rows_upsert_add(
    model: type[models.Model],
    rows: Sequence[Mapping[str, Any]],
    *,
    unique: Sequence[str],
    add: Sequence[str],
    returning: Sequence[str] = (),
) -> list[list[Any]]:
    """Insert `rows`, or where a row with the same `unique` fields exists, add the
    new values of the `add` fields to it: one INSERT ... ON CONFLICT DO UPDATE
    (PostgreSQL and SQLite both), so concurrent writers never lose an addition.

    Each row maps field names to values, the same names in every row; fields
    left out are inserted with their model default (`default=`, as the ORM
    would; an auto-increment key is left to the database). `unique` names the fields of a
    unique constraint. Rows are written, and so locked, in the order given: a
    caller that locks several rows passes them in the one order every writer
    uses, so that two cannot deadlock. Precondition: inside a transaction when
    the locks must outlive the statement. Returns the values of `returning` of
    each row after the addition (in no guaranteed order: return a key to match).
    """
    if not rows:
        return []
    db = _db()
    meta = model._meta
    quote = db.ops.quote_name
    table = quote(meta.db_table)
    names = list(rows[0])
    given = [meta.get_field(name) for name in names]
    defaults = [
        f
        for f in meta.concrete_fields
        if f not in given and not (f.primary_key and isinstance(f, models.AutoField))
    ]
    fields = given + defaults
    params: list[Any] = []
    for row in rows:
        for name, field in zip(names, given, strict=True):
            params.append(field.get_db_prep_save(row[name], db))
        for field in defaults:
            params.append(field.get_db_prep_save(field.get_default(), db))
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    updates = ", ".join(
        f"{column} = {table}.{column} + EXCLUDED.{column}"
        for column in (quote(meta.get_field(name).column) for name in add)
    )
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES {', '.join([placeholders] * len(rows))} "
        f"ON CONFLICT ({_columns(db, meta, unique)}) DO UPDATE SET {updates}"
    )
    if returning:
        sql += f" RETURNING {_columns(db, meta, returning)}"
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        if not returning:
            return []
        returned = cursor.fetchall()
    readers = _readers(db, model, returning)
    return [_read(db, readers, row) for row in returned]


def _columns(db: BaseDatabaseWrapper, meta, names: Sequence[str]) -> str:
    return ", ".join(db.ops.quote_name(meta.get_field(name).column) for name in names)


def _select_sql(
    db: BaseDatabaseWrapper,
    meta,
    names: Sequence[str],
    *,
    where: Mapping[str, Any] | None,
    any_of: Mapping[str, Any] | None = None,
    order_by: str = "",
    limit: int | None = None,
) -> tuple[str, list[Any]]:
    conditions, params = _where(db, meta, where, any_of)
    sql = (
        f"SELECT {_columns(db, meta, names)} FROM {db.ops.quote_name(meta.db_table)} "
        f"WHERE {conditions}"
    )
    if order_by:
        field = meta.get_field(order_by.lstrip("-"))
        sql += f" ORDER BY {db.ops.quote_name(field.column)}"
        sql += " DESC" if order_by.startswith("-") else ""
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, params


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
