"""The DuckDB store (schema, migrations, writes, Parquet export)."""
from chunkctl.store.db import DEFAULT_DB, TABLES, Store, export_parquet

__all__ = ["DEFAULT_DB", "TABLES", "Store", "export_parquet"]
