"""Storage: SQLAlchemy Core tables, engine setup, migrations, repositories."""

from polpo.store.engine import PROCESS_ID, Store, insert_ignore

__all__ = ["PROCESS_ID", "Store", "insert_ignore"]
