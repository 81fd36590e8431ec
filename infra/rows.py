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

Each statement's text is built once per shape (model, fields, which conditions)
and kept; a call only converts its values.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from decimal import Decimal
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
_NULL, _SCALAR = -1, -2

# Statement texts and the fields their parameters convert with, by shape. The
# shapes are the code's own (a few dozen), so the cache stays small; the bound
# is a guard against a caller that builds shapes from data (IN lists of every length).
_statements: dict[tuple, Any] = {}
_STATEMENTS_MAX = 4096


def _statement(key: tuple, build: Callable[[], Any]) -> Any:
    found = _statements.get(key)
    if found is None:
        if len(_statements) >= _STATEMENTS_MAX:
            _statements.clear()
        found = _statements[key] = build()
    return found


# Values the ORM would pass to the database unchanged (`get_prep_value` is the
# identity on them), by field class (exactly: a subclass may convert its own
# way): passed as they are, a microsecond a value saved on the statements of
# every send. Anything else converts as the ORM does.
_NATIVE: dict[type, frozenset] = {
    **dict.fromkeys(
        [
            models.AutoField,
            models.BigAutoField,
            models.SmallAutoField,
            models.IntegerField,
            models.BigIntegerField,
            models.SmallIntegerField,
            models.PositiveIntegerField,
            models.PositiveBigIntegerField,
            models.PositiveSmallIntegerField,
        ],
        frozenset({int}),
    ),
    models.CharField: frozenset({str}),
    models.TextField: frozenset({str}),
    models.BooleanField: frozenset({bool}),
    # Finite ones only: the ORM refuses NaN and infinities (see `_native`).
    models.DecimalField: frozenset({Decimal}),
}
_CONVERTED: frozenset = frozenset()


def _native(value: Any, native: frozenset) -> bool:
    return type(value) in native and (type(value) is not Decimal or value.is_finite())


def _natives(fields: Sequence[models.Field]) -> tuple[frozenset, ...]:
    return tuple(_NATIVE.get(type(f), _CONVERTED) for f in fields)


def _is_many(value: Any) -> bool:
    return isinstance(value, Collection) and not isinstance(value, str | bytes)


def _shape(conditions: Mapping[str, Any] | None) -> tuple | None:
    """What the SQL text of `conditions` depends on: the keys, and per value NULL,
    one value, or a list of n."""
    if conditions is None:
        return None
    return tuple(
        (key, _NULL if value is None else len(value) if _is_many(value) else _SCALAR)
        for key, value in conditions.items()
    )


def _where_sql(db: BaseDatabaseWrapper, meta, where: tuple | None, any_of: tuple | None):
    """(SQL of every condition of `where` and at least one of `any_of`, the field
    of each condition in order); an empty `any_of` matches nothing."""
    quote = db.ops.quote_name

    def condition(key: str, kind: int):
        name, _, lookup = key.partition("__")
        field = meta.get_field(name)
        column = quote(field.column)
        if lookup:
            return f"{column} {_COMPARISONS[lookup]} %s", field
        if kind == _NULL:
            return f"{column} IS NULL", field
        if kind == _SCALAR:
            return f"{column} = %s", field
        return f"{column} IN ({', '.join(['%s'] * kind)})", field

    conditions: list[str] = []
    fields: list[models.Field] = []
    for key, kind in where or ():
        sql, field = condition(key, kind)
        conditions.append(sql)
        fields.append(field)
    if any_of is not None:
        alternatives: list[str] = []
        for key, kind in any_of:
            sql, field = condition(key, kind)
            alternatives.append(sql)
            fields.append(field)
        if not alternatives:
            conditions.append("1 = 0")
        elif len(alternatives) == 1 or not conditions:
            conditions.append(" OR ".join(alternatives))
        else:
            conditions.append(f"({' OR '.join(alternatives)})")
    return " AND ".join(conditions) or "1 = 1", tuple(zip(fields, _natives(fields), strict=True))


def _where_params(
    db: BaseDatabaseWrapper,
    fields: Sequence[tuple[models.Field, frozenset]],
    *conditions: Mapping[str, Any] | None,
) -> list[Any]:
    params: list[Any] = []
    values = [value for group in conditions if group for value in group.values()]
    for (field, native), value in zip(fields, values, strict=True):
        if value is None:
            continue
        if _native(value, native):
            params.append(value)
        elif _is_many(value):
            params.extend(field.get_db_prep_value(v, db) for v in value)
        else:
            params.append(field.get_db_prep_value(value, db))
    return params


def _save_params(
    db: BaseDatabaseWrapper, fields: Sequence[tuple[models.Field, frozenset]], values
) -> list[Any]:
    return [
        value if _native(value, native) else field.get_db_prep_save(value, db)
        for (field, native), value in zip(fields, values, strict=True)
    ]


def _columns(db: BaseDatabaseWrapper, meta, names: Sequence[str]) -> str:
    return ", ".join(db.ops.quote_name(meta.get_field(name).column) for name in names)


def _order_limit(db: BaseDatabaseWrapper, meta, order_by: str, limit: int | None) -> str:
    sql = ""
    if order_by:
        field = meta.get_field(order_by.lstrip("-"))
        sql += f" ORDER BY {db.ops.quote_name(field.column)}"
        sql += " DESC" if order_by.startswith("-") else ""
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql


def rows_update(
    model: type[models.Model], values: Mapping[str, Any], *, where: Mapping[str, Any]
) -> int:
    """UPDATE the rows of `model` that match `where`; returns how many matched.

    `values` and `where` are keyed by field name (a foreign key by its `_id`
    name). In `where`, None matches NULL, a list, tuple or set matches any of
    its values, "name__gte" (gt, lt, lte) compares; everything else is equality.
    """
    db = _db()
    sql, value_fields, where_fields = _update_statement(db, model, values, where, ())
    params = _save_params(db, value_fields, values.values())
    with db.cursor() as cursor:
        cursor.execute(sql, params + _where_params(db, where_fields, where))
        return cursor.rowcount


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
    sql, value_fields, where_fields = _update_statement(db, model, values, where, returning)
    params = _save_params(db, value_fields, values.values())
    with db.cursor() as cursor:
        cursor.execute(sql, params + _where_params(db, where_fields, where))
        rows = cursor.fetchall()
    readers = _readers(db, model, returning)
    return [_read(db, readers, row) for row in rows]


def _update_statement(db, model, values, where, returning):
    key = ("update", db.vendor, model, tuple(values), _shape(where), tuple(returning))

    def build():
        meta = model._meta
        quote = db.ops.quote_name
        value_fields = tuple(meta.get_field(name) for name in values)
        assignments = ", ".join(f"{quote(f.column)} = %s" for f in value_fields)
        conditions, where_fields = _where_sql(db, meta, _shape(where), None)
        sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {conditions}"
        if returning:
            sql += f" RETURNING {_columns(db, meta, returning)}"
        return sql, tuple(zip(value_fields, _natives(value_fields), strict=True)), where_fields

    return _statement(key, build)


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
    key = ("select", db.vendor, model, tuple(names), _shape(where), order_by, for_update)

    def build():
        meta = model._meta
        # In the model's field order: `from_db` takes the values in that order.
        wanted = {meta.get_field(name) for name in names}
        ordered = tuple(f.name for f in meta.concrete_fields if f in wanted)
        conditions, where_fields = _where_sql(db, meta, _shape(where), None)
        sql = (
            f"SELECT {_columns(db, meta, ordered)} FROM {db.ops.quote_name(meta.db_table)} "
            f"WHERE {conditions}{_order_limit(db, meta, order_by, None)}"
        )
        if for_update and db.features.has_select_for_update:
            sql += " FOR UPDATE"
        attnames = [meta.get_field(name).attname for name in ordered]
        return sql, ordered, attnames, where_fields

    sql, ordered, attnames, where_fields = _statement(key, build)
    with db.cursor() as cursor:
        cursor.execute(sql, _where_params(db, where_fields, where))
        rows = cursor.fetchall()
    readers = _readers(db, model, ordered)
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
    names = tuple(names)
    key = ("values", db.vendor, model, names, _shape(where), _shape(any_of), order_by, limit)

    def build():
        meta = model._meta
        conditions, fields = _where_sql(db, meta, _shape(where), _shape(any_of))
        sql = (
            f"SELECT {_columns(db, meta, names)} FROM {db.ops.quote_name(meta.db_table)} "
            f"WHERE {conditions}{_order_limit(db, meta, order_by, limit)}"
        )
        return sql, fields

    sql, fields = _statement(key, build)
    with db.cursor() as cursor:
        cursor.execute(sql, _where_params(db, fields, where, any_of))
        rows = cursor.fetchall()
    readers = _readers(db, model, names)
    return [_read(db, readers, row) for row in rows]


def rows_first_values(
    *reads: tuple[type[models.Model], str, Mapping[str, Any]],
) -> list[Any]:
    """For each `(model, field name, where)`: that field of the first row matching
    `where` (as in `rows_values`), or None when no row matches. All in one
    statement of scalar subqueries: one round trip where reads of single rows,
    one a statement, took one each (a socket's access check: three on every
    send, which showed at p99 with two processes on PostgreSQL)."""
    db = _db()
    key = ("first", db.vendor, tuple((model, name, _shape(where)) for model, name, where in reads))

    def build():
        parts, fields = [], []
        for model, name, where in reads:
            meta = model._meta
            conditions, where_fields = _where_sql(db, meta, _shape(where), None)
            parts.append(
                f"(SELECT {_columns(db, meta, (name,))} FROM {db.ops.quote_name(meta.db_table)} "
                f"WHERE {conditions}{_order_limit(db, meta, '', 1)})"
            )
            fields.append(where_fields)
        return "SELECT " + ", ".join(parts), fields

    sql, fields = _statement(key, build)
    params: list[Any] = []
    for (_, _, where), where_fields in zip(reads, fields, strict=True):
        params += _where_params(db, where_fields, where)
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return [
        None if raw is None else _read(db, _readers(db, model, (name,)), (raw,))[0]
        for (model, name, _), raw in zip(reads, row, strict=True)
    ]


def rows_count(
    model: type[models.Model],
    *,
    where: Mapping[str, Any] | None = None,
    any_of: Mapping[str, Any] | None = None,
) -> int:
    """How many rows match, as `.filter(...).count()` (conditions as in `rows_values`)."""
    db = _db()
    key = ("count", db.vendor, model, _shape(where), _shape(any_of))

    def build():
        meta = model._meta
        conditions, fields = _where_sql(db, meta, _shape(where), _shape(any_of))
        return f"SELECT COUNT(*) FROM {db.ops.quote_name(meta.db_table)} WHERE {conditions}", fields

    sql, fields = _statement(key, build)
    with db.cursor() as cursor:
        cursor.execute(sql, _where_params(db, fields, where, any_of))
        return cursor.fetchone()[0]


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
    would; an auto-increment key is left to the database). `unique` names the
    fields of a unique constraint. Rows are written, and so locked, in the order
    given: a caller that locks several rows passes them in the one order every
    writer uses, so that two cannot deadlock. Precondition: inside a transaction
    when the locks must outlive the statement. Returns the values of `returning`
    of each row after the addition (in no guaranteed order: return a key to match).
    """
    if not rows:
        return []
    db = _db()
    names = tuple(rows[0])
    key = (
        "upsert",
        db.vendor,
        model,
        names,
        tuple(unique),
        tuple(add),
        tuple(returning),
        len(rows),
    )

    def build():
        meta = model._meta
        quote = db.ops.quote_name
        table = quote(meta.db_table)
        given = tuple(meta.get_field(name) for name in names)
        defaults = tuple(
            f
            for f in meta.concrete_fields
            if f not in given and not (f.primary_key and isinstance(f, models.AutoField))
        )
        placeholders = "(" + ", ".join(["%s"] * (len(given) + len(defaults))) + ")"
        updates = ", ".join(
            f"{column} = {table}.{column} + EXCLUDED.{column}"
            for column in (quote(meta.get_field(name).column) for name in add)
        )
        sql = (
            f"INSERT INTO {table} ({', '.join(quote(f.column) for f in given + defaults)}) "
            f"VALUES {', '.join([placeholders] * len(rows))} "
            f"ON CONFLICT ({_columns(db, meta, unique)}) DO UPDATE SET {updates}"
        )
        if returning:
            sql += f" RETURNING {_columns(db, meta, returning)}"
        return sql, tuple(zip(given, _natives(given), strict=True)), defaults

    sql, given, defaults = _statement(key, build)
    params: list[Any] = []
    for row in rows:
        params += _save_params(db, given, row.values())
        for field in defaults:
            params.append(field.get_db_prep_save(field.get_default(), db))
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        if not returning:
            return []
        returned = cursor.fetchall()
    readers = _readers(db, model, returning)
    return [_read(db, readers, row) for row in returned]


# Per connection (each thread has its own): the converters are the connection's.
_readers_by_db: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _readers(db: BaseDatabaseWrapper, model: type[models.Model], names: Sequence[str]) -> list:
    """Per column: the expression and the converters the ORM would apply to it."""
    cache = _readers_by_db.get(db)
    if cache is None:
        cache = _readers_by_db[db] = {}
    key = (model, tuple(names))
    readers = cache.get(key)
    if readers is None:
        meta = model._meta
        readers = []
        for name in names:
            field = meta.get_field(name)
            column = field.get_col(meta.db_table)
            readers.append((column, db.ops.get_db_converters(column) + field.get_db_converters(db)))
        cache[key] = readers
    return readers


def _read(db: BaseDatabaseWrapper, readers: list, row: Sequence[Any]) -> list[Any]:
    values = []
    for (column, converters), value in zip(readers, row, strict=True):
        if converters:
            for convert in converters:
                value = convert(value, column, db)
        values.append(value)
    return values
