"""The database layer: the engine, the sessions, the request's transaction, DriverQuery.

The public names are importable from here: `from app.core.db import SessionDep`.
"""

from app.core.db.driver_query import DriverQuery
from app.core.db.engine import create_engine
from app.core.db.sessions import (
    Database,
    DatabaseDep,
    ReadSessions,
    driver_connection,
    end_read_only_transaction,
    get_database,
    pool_capacity,
    read_capacity,
)
from app.core.db.transaction import (
    READ_ONLY_METHODS,
    RequestTransaction,
    SessionDep,
    TransactionRoute,
    get_session,
)

__all__ = [
    "READ_ONLY_METHODS",
    "Database",
    "DatabaseDep",
    "DriverQuery",
    "ReadSessions",
    "RequestTransaction",
    "SessionDep",
    "TransactionRoute",
    "create_engine",
    "driver_connection",
    "end_read_only_transaction",
    "get_database",
    "get_session",
    "pool_capacity",
    "read_capacity",
]
