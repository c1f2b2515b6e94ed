"""The Contoso Customer table's columns (``contoso-demo.md``), for tests that write their own."""

from __future__ import annotations

from pyspark.sql import types as T

__all__ = ["PROFILE_SCHEMA"]

PROFILE_SCHEMA = T.StructType(
    [
        T.StructField("CustomerId", T.StringType()),
        T.StructField("FirstName", T.StringType()),
        T.StructField("LastName", T.StringType()),
        T.StructField("Email", T.StringType()),
        T.StructField("State", T.StringType()),
        T.StructField("PostCode", T.StringType()),
        T.StructField("DateOfBirth", T.DateType()),
        T.StructField("Income", T.DoubleType()),
        T.StructField("LoyaltyTier", T.StringType()),
        T.StructField("Occupation", T.StringType()),
        T.StructField("EmailSubscriber", T.BooleanType()),
        T.StructField("RewardPoints", T.IntegerType()),
        T.StructField("CustomerSatisfaction", T.StringType()),
    ]
)
