"""Numbers as people write them: the text preview and export show for a number column.

A sum or average computed in binary floating point can come out as ``675.4599999999999``
for 675.46. Shown values are therefore rounded at presentation, never in storage
(docs/numbers.md):

- a column with ``decimals: d`` in the catalog is rounded to d decimals (Spark's
  ``round``, half up) and written with exactly d decimals: ``675.46``, ``20000.00``;
- any other double is written like C's and Python's ``'%.15g'``: 15 significant digits
  (what spreadsheets keep), trailing zeros dropped: ``0.3``, ``675.46``, ``1e-07``;
- other decimals are written exactly, trailing zeros dropped; integers as they are.

All of it is Spark column expressions, so an export of any size stays one Spark write.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ByteType,
    DataType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
)

__all__ = ["SIGNIFICANT_DIGITS", "number_text"]

SIGNIFICANT_DIGITS = 15
# A float (32 bits) holds about 7 significant decimal digits, so its noise starts at the 8th.
_FLOAT_DIGITS = 7
_INTEGRAL = (ByteType, ShortType, IntegerType, LongType)


def _strip_zeros(text: Column) -> Column:
    """``675.460000`` -> ``675.46``, ``1.000e-07`` -> ``1e-07``; integers keep their zeros."""
    text = F.regexp_replace(text, r"(\.[0-9]*?)0+(e|$)", "$1$2")
    return F.regexp_replace(text, r"\.(e|$)", "$1")


def _double_text(column: Column, digits: int, decimals: int | None) -> Column:
    # -0.0 (a tiny negative rounded away, or stored) is shown as 0.
    value = F.when(column == 0, F.lit(0.0)).otherwise(column.cast("double"))
    if decimals is not None:
        return F.format_string(f"%.{decimals}f", F.round(value, decimals))
    return _strip_zeros(F.format_string(f"%.{digits}g", value))


def _decimal_text(column: Column, dtype: DecimalType, decimals: int | None) -> Column:
    if decimals is None:
        return _strip_zeros(column.cast("string"))
    if decimals < dtype.scale:
        return F.round(column, decimals).cast("string")
    digits = dtype.precision - dtype.scale + decimals
    if digits > 38:  # no room for the padding zeros: the exact value, as stored
        return column.cast("string")
    return column.cast(DecimalType(digits, decimals)).cast("string")


def number_text(column: Column, dtype: DataType, decimals: int | None = None) -> Column:
    """``column`` (of type ``dtype``) as the text to show; non-numbers come back unchanged.

    ``decimals`` is the catalog's ``decimals`` of the column (``None`` when undeclared).
    Nulls stay null.
    """
    if isinstance(dtype, _INTEGRAL):
        if not decimals:
            return column
        text = F.concat(column.cast("string"), F.lit("." + "0" * decimals))
    elif isinstance(dtype, DoubleType):
        text = _double_text(column, SIGNIFICANT_DIGITS, decimals)
    elif isinstance(dtype, FloatType):
        text = _double_text(column, _FLOAT_DIGITS, decimals)
    elif isinstance(dtype, DecimalType):
        text = _decimal_text(column, dtype, decimals)
    else:
        return column
    return F.when(column.isNotNull(), text)
