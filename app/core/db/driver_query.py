"""DriverQuery: a prebuilt SELECT that a read session runs on asyncpg's own connection."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Double,
    Float,
    Integer,
    SmallInteger,
    String,
    Text,
    Unicode,
    UnicodeText,
    Uuid,
    exc,
)
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.sql import Select, visitors
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlalchemy.util import method_is_overridden
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.db.sessions import driver_connection
from app.core.models import UTCDateTime

_DRIVER_DIALECT = postgresql_asyncpg.dialect()  # type: ignore[no-untyped-call]

# Types whose values asyncpg encodes and decodes exactly as SQLAlchemy's asyncpg dialect does
# (JSON is read as text: cast it, as LabelsJSON does).
_PLAIN_TYPES: frozenset[type[TypeEngine[Any]]] = frozenset(
    {
        Uuid,
        String,
        Text,
        Unicode,
        UnicodeText,
        Integer,
        BigInteger,
        SmallInteger,
        Boolean,
        Float,
        Double,
        DateTime,
    }
)
# Decorators that convert values, allowed because their result conversion leaves asyncpg's
# values as they are (UTC-aware datetimes); their bind conversion runs on both paths.
_CONVERTING_DECORATORS: frozenset[type[TypeDecorator[Any]]] = frozenset({UTCDateTime})
# A decorator overriding none of these converts no value: it is its `impl` on the wire.
_CONVERSION_HOOKS = (
    TypeDecorator.process_bind_param,
    TypeDecorator.process_result_value,
    TypeDecorator.bind_processor,
    TypeDecorator.result_processor,
    TypeDecorator.bind_expression,
    TypeDecorator.column_expression,
)


def _converts_exactly(type_: TypeEngine[Any]) -> bool:
    """Whether asyncpg's value for `type_` is what SQLAlchemy would hand over, and back."""
    if isinstance(type_, TypeDecorator):
        impl = type_.impl_instance
        if type(type_) not in _CONVERTING_DECORATORS and any(
            method_is_overridden(type_, hook) for hook in _CONVERSION_HOOKS
        ):
            return False
        if method_is_overridden(type_, TypeDecorator.load_dialect_impl) and not isinstance(
            type_.load_dialect_impl(_DRIVER_DIALECT), type(impl)
        ):
            return False
        return _converts_exactly(impl)
    if type(type_) not in _PLAIN_TYPES:
        return False
    if isinstance(type_, Uuid):
        return bool(type_.as_uuid)
    if isinstance(type_, Float):
        return not type_.asdecimal
    if isinstance(type_, DateTime):
        return bool(type_.timezone)
    return True


def _refuse(what: str, type_: TypeEngine[Any]) -> TypeError:
    return TypeError(
        f"DriverQuery: {what} is of type {type_!r}, whose values asyncpg would not convert"
        " as SQLAlchemy does; run this statement through the session"
    )


class DriverQuery:
    """A SELECT compiled once by SQLAlchemy and, in a read session on PostgreSQL, run by
    asyncpg itself: SQLAlchemy's async adaptation and result objects cost more than the query.

    Atomic by construction: only a read session (whose connection holds no transaction) runs
    it on the driver; any other session executes it on its own connection, inside its
    transaction, as do SQLite's. Refused when built: any statement but a SELECT, and any
    parameter or column whose type asyncpg would convert differently from SQLAlchemy (see
    `_converts_exactly`). Parameters get SQLAlchemy's bind processing on both paths, so a
    value the ORM refuses is refused here too, with the same StatementError.
    """

    __slots__ = ("_fixed", "_processors", "names", "sql", "statement")

    def __init__(self, statement: Any) -> None:
        if not isinstance(statement, Select) or any(
            isinstance(element, UpdateBase) for element in visitors.iterate(statement)
        ):
            raise TypeError(
                "DriverQuery runs SELECTs only, with no INSERT, UPDATE or DELETE inside"
            )
        for column in statement.selected_columns:
            if not _converts_exactly(column.type):
                raise _refuse(f"column {str(column)!r}", column.type)
        self.statement = statement
        compiled = statement.compile(dialect=_DRIVER_DIALECT)
        for bind in compiled.binds.values():
            if not _converts_exactly(bind.type):
                raise _refuse(f"parameter {bind.key!r}", bind.type)
        # Lists bound to IN (...) are spelled out by SQLAlchemy at execution: such a
        # statement stays with the session.
        self.sql: str | None = None if compiled.post_compile_params else compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        processors: list[tuple[int, Callable[[Any], Any]]] = []
        # Values the statement carries itself (literals such as a JSON key): processed once.
        self._fixed: dict[str, Any] = {}
        for index, name in enumerate(self.names):
            bind = compiled.binds[name]
            process = bind.type.dialect_impl(_DRIVER_DIALECT).bind_processor(_DRIVER_DIALECT)
            if not bind.required:
                value = bind.effective_value
                self._fixed[name] = value if process is None else process(value)
            elif process is not None:
                processors.append((index, process))
        self._processors = tuple(processors)

    async def fetch(
        self, session: AsyncSession, params: Mapping[str, Any]
    ) -> Sequence[Mapping[str, Any]]:
        """Every row, as mappings of column name to value."""
        driver = driver_connection(session) if self.sql is not None else None
        if driver is not None:
            rows: Sequence[Mapping[str, Any]] = await driver.fetch(self.sql, *self._args(params))
            return rows
        result = await (await session.connection()).execute(self.statement, params)
        return cast(Sequence[Mapping[str, Any]], result.mappings().all())

    async def fetch_one(
        self, session: AsyncSession, params: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """The first row, or None."""
        driver = driver_connection(session) if self.sql is not None else None
        if driver is not None:
            row: Mapping[str, Any] | None = await driver.fetchrow(self.sql, *self._args(params))
            return row
        result = await (await session.connection()).execute(self.statement, params)
        return cast(Mapping[str, Any] | None, result.mappings().first())

    def _args(self, params: Mapping[str, Any]) -> list[Any]:
        fixed = self._fixed
        args = [fixed[name] if name in fixed else params[name] for name in self.names]
        try:
            for index, process in self._processors:
                args[index] = process(args[index])
        except Exception as error:
            # As SQLAlchemy reports a value its bind processing refuses.
            message = f"({type(error).__module__}.{type(error).__name__}) {error}"
            raise exc.StatementError(message, self.sql, [dict(params)], error) from error
        return args
