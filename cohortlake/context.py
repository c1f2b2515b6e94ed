"""A run's context: validated config and catalog first, the Spark session only when needed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from cohortlake.catalog import AttributeSpec, Catalog, load_catalog
from cohortlake.conditions.limits import utc
from cohortlake.config import LakehouseConfig, load_lakehouse_config, master_problem
from cohortlake.errors import InputError, Problem
from cohortlake.lake import Lake

__all__ = ["AS_OF_RANGE", "Context", "load_context", "parse_as_of"]


@dataclass
class Context:
    """Everything a job needs; building it validates config without touching data."""

    conf_dir: Path
    config: LakehouseConfig
    catalog: Catalog
    root: str
    master: str | None = None
    spark_conf: dict[str, Any] = field(default_factory=dict)
    _spark: SparkSession | None = None
    _lake: Lake | None = None

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            from cohortlake.session import get_spark

            # The configured master is a setting like the others: under spark-submit the
            # launcher's own settings win over it; only --master overrides them.
            configured = (
                {"spark.master": self.config.spark.master} if self.config.spark.master else {}
            )
            conf = {**configured, **self.config.spark.conf, **self.spark_conf}
            self._spark = get_spark(master=self.master, conf=conf)
        return self._spark

    @property
    def lake(self) -> Lake:
        if self._lake is None:
            self._lake = Lake(self.spark, self.root)
        return self._lake

    def tracking_uri(self) -> str:
        """``--tracking-uri`` / ``MLFLOW_TRACKING_URI`` / config, else SQLite under the root."""
        if self.config.tracking_uri:
            return self.config.tracking_uri
        return f"sqlite:///{self.root.removeprefix('file:')}/mlflow.db"

    def conf_path(self, *parts: str) -> Path:
        return self.conf_dir.joinpath(*parts)

    def check_tables(
        self,
        *,
        profile: bool = True,
        measures: bool = False,
        activities: Iterable[str] = (),
        segments: Iterable[str] = (),
    ) -> None:
        """The tables a job reads must exist, match the catalog's columns, and the profile
        hold rows, before it writes.

        A missing table, a missing or mistyped column or an empty profile is bad input for
        the job: an InputError (exit 2, one line per problem, nothing written) instead of a
        failure half-way through.
        """
        lake = self.lake
        problems: list[Problem] = []
        if profile:
            path = lake.profile_path(self.catalog.profile_entity)
            if not lake.exists(path):
                problems.append(
                    Problem(
                        path,
                        "",
                        "missing Delta table: the customer profile (run `cohortlake generate` or load your data)",
                    )
                )
            else:
                table = lake.read(path)
                attributes = self.catalog.profile.attributes
                problems += _column_problems(path, table.schema, self.catalog.key, attributes)
                if table.limit(1).count() == 0:
                    problems.append(Problem(path, "", "the customer profile table has no rows"))
        if measures and not lake.exists(lake.measures_path()):
            problems.append(
                Problem(
                    lake.measures_path(),
                    "",
                    "missing Delta table: the measures (run `cohortlake measures`)",
                )
            )
        for entity in dict.fromkeys(activities):
            path = lake.activity_path(entity)
            found = self.catalog.activity(entity)
            if not lake.exists(path):
                problems.append(Problem(path, "", f"missing Delta table: activity {entity}"))
            elif found is not None:
                schema = lake.read(path).schema
                problems += _column_problems(path, schema, self.catalog.key, found[1].attributes)
        for output in dict.fromkeys(segments):
            path = lake.segment_path(output)
            if not lake.exists(path):
                problems.append(
                    Problem(path, "", f"missing Delta table: segment {output} has not been run yet")
                )
        if problems:
            raise InputError(problems)


# The Spark types a catalog type may be stored as (a date may be a timestamp and back).
_STORED_AS: dict[str, tuple[type[T.DataType], ...]] = {
    "string": (T.StringType, T.VarcharType, T.CharType),
    "number": (T.NumericType,),
    "integer": (T.IntegralType,),
    "date": (T.DateType, T.TimestampType, T.TimestampNTZType),
    "timestamp": (T.TimestampType, T.TimestampNTZType, T.DateType),
    "boolean": (T.BooleanType,),
}


def _column_problems(
    path: str, schema: T.StructType, key: str, attributes: Mapping[str, AttributeSpec]
) -> list[Problem]:
    """The table's columns against the catalog: every attribute and the key, of its type.

    Checked from the Delta log's schema before anything runs, so a table that does not
    match the catalog is bad input (exit 2) rather than a Spark error half-way through.
    """
    columns = {f.name.lower(): f.dataType for f in schema.fields}
    problems = []
    if key.lower() not in columns:
        problems.append(Problem(path, "", f"the key column {key} is missing from the table"))
    for name, spec in attributes.items():
        dtype = columns.get(name.lower())
        if dtype is None:
            problems.append(
                Problem(path, "", f"column {name} ({spec.type}) of the catalog is missing")
            )
        elif not isinstance(dtype, _STORED_AS[spec.type]):
            problems.append(
                Problem(
                    path,
                    "",
                    f"column {name} is {dtype.simpleString()} in the table; the catalog says {spec.type}",
                )
            )
    return problems


def load_context(
    conf_dir: str | Path = "conf",
    *,
    root: str | None = None,
    master: str | None = None,
    tracking_uri: str | None = None,
    spark: SparkSession | None = None,
) -> Context:
    """Load ``<conf>/lakehouse.yaml`` and ``<conf>/catalog.yaml``; ``root`` overrides the config."""
    conf = Path(conf_dir)
    if not conf.is_dir():
        raise InputError(f"configuration folder not found: {conf}", file=str(conf))
    if master is not None and master_problem(master):
        raise InputError(str(master_problem(master)), file="--master")
    config = load_lakehouse_config(
        conf / "lakehouse.yaml", {"root": root, "tracking_uri": tracking_uri}
    )
    catalog = load_catalog(conf / "catalog.yaml")
    resolved = config.resolved_root(Path.cwd())
    local = (
        Path(resolved.removeprefix("file:"))
        if "://" not in resolved or resolved.startswith("file:")
        else None
    )
    if local is not None and local.exists() and not local.is_dir():
        raise InputError(
            f"lakehouse root {resolved} is a file, not a folder",
            file=str(conf / "lakehouse.yaml"),
            path="root",
        )
    ctx = Context(conf, config, catalog, resolved, master=master)
    if spark is not None:
        ctx._spark = spark
    return ctx


# The as-of dates a run accepts: relative windows (up to 100000 days, weeks, months or
# years back) are then clamped at year 1 instead of leaving the calendar.
AS_OF_RANGE = (dt.datetime(1900, 1, 1, tzinfo=dt.UTC), dt.datetime.max.replace(tzinfo=dt.UTC))


def parse_as_of(value: str | None, *, file: str = "--as-of", path: str = "") -> dt.datetime:
    """ISO date (00:00 UTC) or timestamp (UTC unless an offset is given), from 1900-01-01
    to 9999-12-31 UTC; None means now."""
    if value is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    text = value.strip()
    try:
        if len(text) == 10:
            d = dt.date.fromisoformat(text)
            ts: dt.datetime | None = dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)
        else:  # None when an offset moves it out of the calendar
            ts = utc(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise InputError(f"not an ISO date or timestamp: {value!r}", file=file, path=path) from None
    if ts is None or not AS_OF_RANGE[0] <= ts <= AS_OF_RANGE[1]:
        raise InputError(
            f"{value!r} is out of range: from 1900-01-01 to 9999-12-31 (UTC)", file=file, path=path
        )
    return ts
