"""The catalog's entities as tables: where each lives and how it is read.

The profile and each activity are read from their ``table:`` (a path or a metastore
name) or, without one, from the lakehouse layout (``<root>/profile/<Entity>``,
``<root>/activity/<Entity>``). Every reader gets the same frame whatever the table
looks like: the activity's own key column renamed to the profile's key, and dates or
timestamps stored as text (with a ``format:``) parsed, a value that does not parse
becoming null (``cohortlake check`` counts those).
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from cohortlake.catalog import ActivitySpec, AttributeSpec, Catalog
from cohortlake.errors import RunFailure
from cohortlake.lake import Lake
from cohortlake.tables import TableRef

__all__ = [
    "activity_key",
    "activity_ref",
    "parse_text_time",
    "profile_ref",
    "read_activity",
    "read_fields",
    "read_profile",
    "ref_version",
    "source_refs",
]


def profile_ref(lake: Lake, catalog: Catalog) -> TableRef:
    """The profile's table: its ``table:`` or ``<root>/profile/<Entity>``."""
    return TableRef(catalog.profile.table or lake.profile_path(catalog.profile_entity))


def activity_ref(lake: Lake, catalog: Catalog, entity: str) -> TableRef:
    """An activity's table: its ``table:`` or ``<root>/activity/<Entity>``."""
    name, spec = _activity(catalog, entity)
    return TableRef(spec.table or lake.activity_path(name))


def activity_key(catalog: Catalog, entity: str) -> str:
    """The activity table's own customer-key column (the profile's key unless it names one)."""
    return _activity(catalog, entity)[1].key or catalog.key


def source_refs(lake: Lake, catalog: Catalog) -> dict[str, TableRef]:
    """Every input table by its version key: ``profile`` and ``activity/<Entity>``."""
    refs = {"profile": profile_ref(lake, catalog)}
    for entity in catalog.activities:
        refs[f"activity/{entity}"] = activity_ref(lake, catalog, entity)
    return refs


def ref_version(lake: Lake, ref: TableRef) -> int | None:
    """The latest Delta version (a path from its log's listing, a name from its history)."""
    return ref.version(lake.spark) if ref.by_name else lake.version(ref.location)


def read_profile(lake: Lake, catalog: Catalog, version: int | None = None) -> DataFrame:
    """The customer profile, its text dates parsed; a missing table is a RunFailure."""
    ref = profile_ref(lake, catalog)
    return _conform(
        _read(lake, ref, version, "the customer profile"),
        catalog.key,
        catalog.key,
        catalog.profile.attributes,
    )


def read_activity(
    lake: Lake, catalog: Catalog, entity: str, version: int | None = None
) -> DataFrame:
    """An activity with its key column named as the profile's and its text dates parsed."""
    name, spec = _activity(catalog, entity)
    ref = activity_ref(lake, catalog, name)
    frame = _read(lake, ref, version, f"activity {name}")
    return _conform(frame, spec.key or catalog.key, catalog.key, spec.attributes)


def _activity(catalog: Catalog, entity: str) -> tuple[str, ActivitySpec]:
    found = catalog.activity(entity)
    if found is None:
        raise RunFailure(f"unknown activity entity {entity!r}")
    return found


def _read(lake: Lake, ref: TableRef, version: int | None, what: str) -> DataFrame:
    if not ref.exists(lake.spark):
        raise RunFailure(f"missing table {ref} ({what})")
    return ref.read(lake.spark, version)


def _conform(
    frame: DataFrame, key_column: str, key: str, attributes: Mapping[str, AttributeSpec]
) -> DataFrame:
    stored = {f.name.lower(): f for f in frame.schema.fields}
    if key_column.lower() != key.lower() and key_column.lower() in stored:
        frame = frame.withColumnRenamed(stored[key_column.lower()].name, key)
    for name, spec in attributes.items():
        field = stored.get(name.lower())
        if spec.format is None or field is None or not isinstance(field.dataType, T.StringType):
            continue
        frame = frame.withColumn(field.name, parse_text_time(F.col(field.name), spec))
    return frame


def parse_text_time(column: Column, spec: AttributeSpec) -> Column:
    """A date or timestamp stored as text, parsed with the attribute's format (null if not)."""
    assert spec.format is not None
    if spec.format == "iso":
        return column.try_cast("date" if spec.type == "date" else "timestamp")
    if spec.type == "date":
        return F.try_to_date(column, spec.format)
    return F.try_to_timestamp(column, F.lit(spec.format))


def read_fields(
    lake: Lake, catalog: Catalog, profile_columns: list[str], measure_columns: list[str]
) -> DataFrame:
    """Every profile customer with the given profile attributes and measures.

    Measures come from the measures table by a left join, so a customer without
    activity has null measures.
    """
    key = catalog.key
    frame = read_profile(lake, catalog).select(key, *profile_columns)
    if measure_columns:
        path = lake.measures_path()
        if not lake.exists(path):
            raise RunFailure(f"missing measures table {path}: run `cohortlake measures` first")
        frame = frame.join(lake.read(path).select(key, *measure_columns), key, "left")
    return frame
