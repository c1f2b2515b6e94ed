"""Field encoding: each field becomes a standardised coordinate or part of an exact-match block.

- Numbers, integers, dates and timestamps (dates as days) are standardised over the whole
  population, ``z = (x - mean) / std``, so one unit is one population standard deviation on
  every axis and no field dominates because of its unit.
- Booleans and strings with at most ``MAX_CATEGORIES`` distinct values are categories: a
  customer is only compared with source members in the same category (a different loyalty
  tier or state is "not similar"), so categories cost no dimensions and cut the search.
- High-cardinality strings that are codes (at least 90% digits, such as PostCode) are read as
  numbers and standardised: post codes are allocated by region, so near numbers are near
  places, while one-hot or hashing would make every two codes equally far apart. Other
  high-cardinality strings stay exact-match categories (logged, since few will match).
- Nulls: a null coordinate is set to the mean (0) and its null-ness joins the block, so a
  customer with a null field is compared only with source members whose field is null too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cohortlake.catalog import FieldRef

__all__ = [
    "BLOCK",
    "ID",
    "MAX_CATEGORIES",
    "Encoding",
    "FieldEncoding",
    "fit_encoding",
    "z_columns",
]

log = logging.getLogger(__name__)

ID = "_id"
BLOCK = "_blk"
MAX_CATEGORIES = 64
_CODE = "^[0-9]{1,15}$"
_CODE_SHARE = 0.9


def z_columns(dims: int) -> list[str]:
    """The coordinate columns of an encoded frame: ``_z0, _z1, ...``."""
    return [f"_z{i}" for i in range(dims)]


@dataclass(frozen=True)
class FieldEncoding:
    """How one field is encoded: ``numeric`` and ``code`` give a coordinate, ``category`` a block part."""

    field: str
    type: str
    kind: Literal["numeric", "code", "category"]
    mean: float = 0.0
    std: float = 1.0
    distinct: int = 0

    def raw(self) -> Column:
        """The field as a double (numeric kinds) or as a string (categories)."""
        col = F.col(self.field)
        if self.kind == "category":
            return col.cast("string")
        if self.kind == "code":
            return F.when(col.cast("string").rlike(_CODE), col.cast("string").try_cast("double"))
        return _numeric(col, self.type)


def _numeric(col: Column, type_: str) -> Column:
    if type_ == "date":
        return F.unix_date(col).cast("double")
    if type_ == "timestamp":
        return F.unix_seconds(col).cast("double") / F.lit(86400.0)
    return col.cast("double")


@dataclass(frozen=True)
class Encoding:
    """A fitted encoding: applying it gives ``_id``, ``_blk`` (array<string>) and ``_z0..``."""

    key: str
    fields: tuple[FieldEncoding, ...]

    @property
    def dims(self) -> int:
        return sum(1 for f in self.fields if f.kind != "category")

    def apply(self, df: DataFrame) -> DataFrame:
        """Encode a frame holding the key and the fields (Column expressions only)."""
        coords: list[Column] = []
        block: list[Column] = []
        for f in self.fields:
            raw = f.raw()
            if f.kind == "category":
                block.append(
                    F.when(raw.isNull(), F.lit("null")).otherwise(F.concat(F.lit("v:"), raw))
                )
                continue
            z = (raw - F.lit(f.mean)) / F.lit(f.std)
            coords.append(F.coalesce(z, F.lit(0.0)).alias(f"_z{len(coords)}"))
            block.append(F.when(raw.isNull(), F.lit("null")).otherwise(F.lit("v")))
        blk = F.array(*block) if block else F.array().cast("array<string>")
        return df.select(F.col(self.key).alias(ID), blk.alias(BLOCK), *coords)

    def describe(self) -> list[dict[str, object]]:
        return [
            {
                "field": f.field,
                "type": f.type,
                "encoding": f.kind,
                "mean": f.mean,
                "std": f.std,
                "distinct": f.distinct,
            }
            for f in self.fields
        ]


def fit_encoding(population: DataFrame, key: str, fields: tuple[FieldRef, ...]) -> Encoding:
    """Choose each field's encoding and its scale from one aggregate pass over the population."""
    aggs: list[Column] = []
    for i, f in enumerate(fields):
        col = F.col(f.name)
        if f.type in ("string", "boolean"):
            s = col.cast("string")
            aggs.append(F.approx_count_distinct(s).alias(f"d{i}"))
            aggs.append(F.avg(F.when(s.isNotNull(), s.rlike(_CODE).cast("double"))).alias(f"c{i}"))
            code = F.when(s.rlike(_CODE), s.try_cast("double"))
            aggs.append(F.avg(code).alias(f"m{i}"))
            aggs.append(F.stddev_pop(code).alias(f"s{i}"))
        else:
            x = _numeric(col, f.type)
            aggs.append(F.avg(x).alias(f"m{i}"))
            aggs.append(F.stddev_pop(x).alias(f"s{i}"))
    row = population.agg(*aggs).first()
    assert row is not None
    out: list[FieldEncoding] = []
    for i, f in enumerate(fields):
        mean = float(row[f"m{i}"] or 0.0)
        std = float(row[f"s{i}"] or 0.0)
        std = std if std > 1e-12 else 1.0
        if f.type in ("string", "boolean"):
            distinct = int(row[f"d{i}"] or 0)
            share = float(row[f"c{i}"] or 0.0)
            if f.type == "string" and distinct > MAX_CATEGORIES and share >= _CODE_SHARE:
                out.append(FieldEncoding(f.name, f.type, "code", mean, std, distinct))
            else:
                if distinct > MAX_CATEGORIES:
                    log.warning(
                        "field %s has ~%d distinct values: matched exactly, few customers may match",
                        f.name,
                        distinct,
                    )
                out.append(FieldEncoding(f.name, f.type, "category", distinct=distinct))
        else:
            out.append(FieldEncoding(f.name, f.type, "numeric", mean, std))
    enc = Encoding(key, tuple(out))
    log.info("encoding: %s", ", ".join(f"{f.field}={f.kind}" for f in enc.fields))
    return enc
