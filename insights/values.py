"""Customer rows for insights: fields as numbers or categories, in one long table.

Numeric fields (number, integer, date, timestamp) become doubles — dates as days and
timestamps as seconds since 1970-01-01 UTC — so one ordering serves ranks and bins;
string and boolean fields are categories (booleans as ``true``/``false``).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cohortlake.catalog import Catalog, FieldRef
from cohortlake.lake import Lake
from cohortlake.sources import read_fields

__all__ = ["NUMERIC_TYPES", "customer_rows", "field_names", "is_numeric", "long_values"]

NUMERIC_TYPES = ("number", "integer", "date", "timestamp")


def is_numeric(field: FieldRef) -> bool:
    return field.type in NUMERIC_TYPES


def _number(field: FieldRef) -> Column:
    c = F.col(field.name)
    if field.type == "date":
        return F.unix_date(c.cast("date")).cast("double")
    if field.type == "timestamp":
        return F.unix_micros(c.cast("timestamp")).cast("double") / F.lit(1_000_000.0)
    return c.cast("double")


def _category(field: FieldRef) -> Column:
    c = F.col(field.name)
    if field.type == "boolean":
        return (
            F.when(c.isNull(), F.lit(None).cast("string"))
            .when(c.cast("boolean"), F.lit("true"))
            .otherwise(F.lit("false"))
        )
    return c.cast("string")


def long_values(
    rows: DataFrame, fields: tuple[FieldRef, ...], keep: list[str], by_index: bool = False
) -> DataFrame:
    """One row per customer row and field: ``keep`` columns, ``Field``, ``Num``, ``Cat``.

    A numeric field fills ``Num`` and leaves ``Cat`` null, a categorical one the other
    way round; a null value leaves both null. With ``by_index`` ``Field`` is the field's
    position in ``fields`` (an int hashes faster than a name when grouping many rows;
    ``field_names`` turns it back).
    """
    # stack() rather than explode(array(struct(...))): no array or struct per row, which
    # made the 10-field differentiators' value counts ~10% faster at 1M customers.
    triples = [
        column
        for i, f in enumerate(fields)
        for column in (
            F.lit(i) if by_index else F.lit(f.name),
            _number(f) if is_numeric(f) else F.lit(None).cast("double"),
            F.lit(None).cast("string") if is_numeric(f) else _category(f),
        )
    ]
    return rows.select(*keep, F.stack(F.lit(len(fields)), *triples).alias("Field", "Num", "Cat"))


def field_names(index: Column, fields: tuple[FieldRef, ...]) -> Column:
    """The name of the field at ``index`` (0-based) of ``fields``."""
    return F.element_at(F.array(*[F.lit(f.name) for f in fields]), index + 1)


def customer_rows(lake: Lake, catalog: Catalog, fields: tuple[FieldRef, ...]) -> DataFrame:
    """Every profile customer with the chosen profile attributes and measures.

    Measures come from the measures table by a left join, so a customer without
    activity has null measures. A missing table or column is a RunFailure.
    """
    wanted = [f.name for f in fields if f.source == "profile"]
    measures = [f.name for f in fields if f.source == "measure"]
    return read_fields(lake, catalog, wanted, measures)
