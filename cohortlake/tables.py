"""Tables by path or by name: one way to find, read, version and write a Delta table.

A catalog's ``table:``, ``cohortlake import --table`` and ``catalog init`` all take either
a path (any Hadoop URI: ``/data/x``, ``s3a://bucket/x``, ``file:/x``) or a table name the
Spark session's catalog resolves (``customers``, ``crm.customers``,
``main.crm.customers``), so a Hive or Unity Catalog metastore works as it is. A name is
read with ``spark.read.table`` (never a SQL string), so time travel (``versionAsOf``)
works by name as by path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the catalog validates `table:` without importing Spark
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql import types as T

__all__ = ["TableRef", "table_ref_problem"]

# One to three dot-separated identifiers (catalog.schema.table); no quoting, no spaces.
_PART = r"[A-Za-z_][A-Za-z0-9_]{0,127}"
_NAME = re.compile(rf"^{_PART}(\.{_PART}){{0,2}}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def table_ref_problem(text: object) -> str | None:
    """Why ``text`` is neither a path nor a table name, or None when it is one."""
    if not isinstance(text, str) or not text.strip():
        return "a table must be a path or a table name (text)"
    if _CONTROL.search(text) or text != text.strip():
        return "a table must not hold control characters or surrounding blanks"
    if len(text) > 4096:
        return "a table must be at most 4096 characters"
    if _is_path(text):
        return None
    if not _NAME.match(text):
        return (
            f"{text!r} is neither a path (with / or a URI scheme) nor a table name "
            "(name, schema.name or catalog.schema.name: letters, digits and _)"
        )
    return None


def _is_path(text: str) -> bool:
    return "/" in text or "\\" in text or ":" in text


@dataclass(frozen=True)
class TableRef:
    """A Delta table named by path or by the session catalog's name for it."""

    location: str

    @property
    def by_name(self) -> bool:
        return not _is_path(self.location)

    def __str__(self) -> str:
        return self.location

    def metastore_problem(self, spark: SparkSession) -> str | None:
        """Why this session cannot keep a table under this name (an in-memory catalog
        forgets it when the process ends), or None: a path, a metastore, or a
        ``catalog.schema.table`` name whose catalog is configured."""
        if not self.by_name:
            return None
        parts = self.location.split(".")
        v2 = len(parts) == 3 and parts[0].lower() != "spark_catalog"
        if v2 and spark.conf.get(f"spark.sql.catalog.{parts[0]}", None) is not None:
            return None
        if spark.conf.get("spark.sql.catalogImplementation") != "in-memory":
            return None
        return (
            f"table name {self.location} needs a persistent metastore, and this session's "
            "catalog is in-memory: give a path, or set `spark.sql.catalogImplementation: hive` "
            "(and a metastore) under spark.conf in lakehouse.yaml"
        )

    def exists(self, spark: SparkSession) -> bool:
        if self.by_name:
            return bool(spark.catalog.tableExists(self.location))
        from delta.tables import DeltaTable

        return bool(DeltaTable.isDeltaTable(spark, self.location))

    def is_delta(self, spark: SparkSession) -> bool:
        """A named table may be any format the metastore holds; a path must be Delta."""
        if not self.by_name:
            return self.exists(spark)
        from pyspark.errors import AnalysisException

        try:
            self._delta(spark)
        except AnalysisException:
            return False
        return True

    def read(self, spark: SparkSession, version: int | None = None) -> DataFrame:
        """The table, at ``version`` when given (Delta time travel by name or by path)."""
        reader = spark.read
        if version is not None:
            reader = reader.option("versionAsOf", version)
        if self.by_name:
            return reader.table(self.location)
        return reader.format("delta").load(self.location)

    def schema(self, spark: SparkSession) -> T.StructType:
        """The table's schema from its metadata (the Delta log or the metastore): no Spark job."""
        return self.read(spark).schema

    def _delta(self, spark: SparkSession) -> DeltaTable:
        from delta.tables import DeltaTable

        if self.by_name:
            return DeltaTable.forName(spark, self.location)
        return DeltaTable.forPath(spark, self.location)

    def read_changes(self, spark: SparkSession, start: int, end: int) -> DataFrame:
        """The change data feed of versions ``start`` to ``end`` (both included): the
        changed rows with ``_change_type``, ``_commit_version``, ``_commit_timestamp``."""
        reader = (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", start)
            .option("endingVersion", end)
        )
        return reader.table(self.location) if self.by_name else reader.load(self.location)

    def operations(self, spark: SparkSession, after: int, upto: int) -> list[tuple[int, str, str]]:
        """``(version, operation, write mode)`` of the commits after ``after`` up to
        ``upto``, from the table's history (bounded by those commits)."""
        from pyspark.sql import functions as F

        rows = (
            self._delta(spark)
            .history()
            .filter((F.col("version") > after) & (F.col("version") <= upto))
            .select("version", "operation", F.col("operationParameters")["mode"].alias("mode"))
            .collect()
        )
        return sorted((int(r[0]), str(r[1]), str(r[2] or "")) for r in rows)

    def change_feed(self, spark: SparkSession) -> bool | None:
        """Whether the table records its changes (Delta's change data feed); None if not Delta."""
        from pyspark.errors import AnalysisException

        try:
            row = self._delta(spark).detail().select("properties").first()
        except AnalysisException:
            return None
        properties = (row[0] if row is not None else None) or {}
        return str(properties.get("delta.enableChangeDataFeed", "false")).lower() == "true"

    def version(self, spark: SparkSession) -> int | None:
        """The latest Delta version, or None for a table that is not Delta (or not there)."""
        from pyspark.errors import AnalysisException

        try:
            row = self._delta(spark).history(1).select("version").first()
        except AnalysisException:
            return None
        return None if row is None else int(row[0])
