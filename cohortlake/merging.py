"""One MERGE that makes some rows of a Delta table exactly what a source says.

The source holds the new rows, plus the keys of rows to delete marked ``gone``. Stating
deletions in the source (instead of WHEN NOT MATCHED BY SOURCE) lets Delta read and
rewrite only the files the ON condition can match, and an unchanged row is not updated,
so the change data feed holds real changes only. Names reach Delta quoted, as Columns.
"""

from __future__ import annotations

import functools

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

__all__ = ["GONE", "merge_rows"]

GONE = "__gone"


def merge_rows(
    target: DeltaTable,
    new: DataFrame,
    gone: DataFrame,
    keys: list[str],
    within: Column | None = None,
    broadcast: bool = False,
) -> None:
    """Insert or update ``new`` rows, delete the rows whose ``keys`` are in ``gone``.

    ``within`` (over the target, aliased ``t``) bounds what the MERGE may touch, such
    as a partition filter. Columns of the target that ``new`` lacks are null.
    ``broadcast`` sends a small source to every task, so the target is scanned without
    a shuffle (an incremental run's few changed customers against whole segments).
    """
    have: dict[str, T.DataType] = {f.name: f.dataType for f in target.toDF().schema.fields}
    values = [c for c in have if c not in keys]

    def typed(frame: DataFrame, flag: bool) -> DataFrame:
        return frame.select(
            *keys,
            *[
                F.col(c) if c in frame.columns else F.lit(None).cast(have[c]).alias(c)
                for c in values
            ],
            F.lit(flag).alias(GONE),
        )

    source = typed(new, False).unionByName(typed(gone.select(*keys), True))
    if broadcast:
        source = F.broadcast(source)
    on = functools.reduce(lambda a, b: a & b, [_col("t", k) == _col("s", k) for k in keys])
    if within is not None:
        on = on & within
    builder = target.alias("t").merge(source.alias("s"), on)
    builder = builder.whenMatchedDelete(condition=_col("s", GONE))
    if values:
        changed = functools.reduce(
            lambda a, b: a | b, [~_col("t", c).eqNullSafe(_col("s", c)) for c in values]
        )
        builder = builder.whenMatchedUpdate(
            condition=~_col("s", GONE) & changed,
            set={quote(c): _col("s", c) for c in values},
        )
    builder = builder.whenNotMatchedInsert(
        condition=~_col("s", GONE),
        values={quote(c): _col("s", c) for c in (*keys, *values)},
    )
    builder.execute()


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _col(alias: str, name: str) -> Column:
    return F.col(f"{alias}.{quote(name)}")
