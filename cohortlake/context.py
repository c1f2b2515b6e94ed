"""A run's context: validated config and catalog first, the Spark session only when needed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from cohortlake.catalog import Catalog, load_catalog
from cohortlake.conditions.limits import utc
from cohortlake.config import LakehouseConfig, load_lakehouse_config, master_problem
from cohortlake.errors import InputError
from cohortlake.lake import Lake

__all__ = ["AS_OF_RANGE", "Context", "load_context", "parse_as_of"]


@dataclass
class Context:
    """Everything a job needs; building it validates config without touching data."""

    conf_dir: Path
    config: LakehouseConfig
    _catalog: Catalog | None
    root: str
    master: str | None = None
    spark_conf: dict[str, Any] = field(default_factory=dict)
    _spark: SparkSession | None = None
    _lake: Lake | None = None

    @property
    def catalog(self) -> Catalog:
        """The validated catalog (loaded on first use when the context was built without it)."""
        if self._catalog is None:
            self._catalog = load_catalog(self.conf_dir / "catalog.yaml")
        return self._catalog

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
            self._lake = Lake(self.spark, self.root, deletion_vectors=self.config.deletion_vectors)
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
        """The tables a job reads must exist and match the catalog, and the profile hold
        rows with one non-null key each, before the job reads or writes anything else.

        The schemas are checked from metadata (no Spark job), the profile's keys by one
        aggregation (``cohortlake.checks``). Any mismatch is bad input for the job: an
        InputError (exit 2, one line per problem, nothing written).
        """
        from cohortlake.checks import key_problems, profile_key_counts, schema_problems
        from cohortlake.sources import profile_ref

        lake = self.lake
        problems = schema_problems(
            lake,
            self.catalog,
            profile=profile,
            activities=activities,
            measures=measures,
            segments=segments,
        )
        table = str(profile_ref(lake, self.catalog))
        if profile and not any(p.file == table or p.path.startswith("profile") for p in problems):
            # the profile matches the catalog: count its keys
            counts = profile_key_counts(lake, self.catalog)
            problems = key_problems(table, self.catalog.key, counts) + problems
        if problems:
            raise InputError(problems)


def load_context(
    conf_dir: str | Path = "conf",
    *,
    root: str | None = None,
    master: str | None = None,
    tracking_uri: str | None = None,
    spark: SparkSession | None = None,
    catalog: bool = True,
) -> Context:
    """Load ``<conf>/lakehouse.yaml`` and ``<conf>/catalog.yaml``; ``root`` overrides the config.

    ``catalog=False`` is for the commands that make a catalog or its tables (``import``,
    ``catalog init``): the catalog is then loaded only if used, and the configuration
    folder may be missing (all defaults).
    """
    conf = Path(conf_dir)
    if catalog and not conf.is_dir():
        raise InputError(f"configuration folder not found: {conf}", file=str(conf))
    if master is not None and master_problem(master):
        raise InputError(str(master_problem(master)), file="--master")
    config = load_lakehouse_config(
        conf / "lakehouse.yaml", {"root": root, "tracking_uri": tracking_uri}
    )
    loaded = load_catalog(conf / "catalog.yaml") if catalog else None
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
    ctx = Context(conf, config, loaded, resolved, master=master)
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
