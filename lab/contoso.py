"""The Contoso Coffee data generator: the lab's customers and purchases as Delta tables.

Everything is a Spark column expression over ``spark.range(customers)``. Every random
draw is a hash of (seed, customer id[, purchase number], draw number), so the same seed
gives identical tables at any size of cluster or number of partitions, and nothing is
held on the driver. The distributions plant the lab's patterns (see the Contoso demo
spec): high-income high-tier customers spend 20% more, low-income teachers who do not
subscribe spend about 15% less, and Californians who are not teachers and not in the
high tier are mostly dissatisfied.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Sequence

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cohortlake.errors import InputError, Problem
from cohortlake.lake import Lake

__all__ = [
    "DEFAULT_END",
    "DEFAULT_PURCHASES_PER_CUSTOMER",
    "GENERATOR_VERSION",
    "OCCUPATIONS",
    "PRODUCTS",
    "STATES",
    "generate_contoso",
    "purchase_count_location",
]

log = logging.getLogger(__name__)

# Bumped whenever the same seed would give different data (benchmarks reuse lakes by it).
GENERATOR_VERSION = 2
DEFAULT_END = dt.date(2026, 6, 30)
# The lab's mean LifetimeSpend (869.74) over the mean Amount of a purchase (138 + 113) / 2.
DEFAULT_PURCHASES_PER_CUSTOMER = 6.93
HISTORY_DAYS = 730

WEB_MEAN, STORE_MEAN, AMOUNT_SIGMA = 138.0, 113.0, 0.45
P_WEB = 0.5

TIERS: tuple[tuple[str, float], ...] = (("low", 0.35), ("medium", 0.45), ("high", 0.20))
P_HIGH_INCOME_IF_HIGH_TIER = 0.585
P_LOW_INCOME_TEACHER = 0.75
OTHER_INCOME_BANDS = (0.30, 0.60, 0.10)  # < 44k, 44k-97k, > 97k
P_SUBSCRIBER_LOW_INCOME_TEACHER, P_SUBSCRIBER = 0.20, 0.55
P_LOW_SATISFACTION_CA, P_LOW_SATISFACTION = 0.83, 0.198
P_MEDIUM_IF_NOT_LOW = 0.55

# Spend of each planted group relative to the overall mean; the rest is solved for.
SPEND_HIGH_VALUE = 1.2
SPEND_LOW_INCOME_TEACHER = 741.89 / 869.74

P_TEACHER = 0.25
OCCUPATIONS: tuple[str, ...] = (
    "Teacher", "Engineer", "Nurse", "Accountant", "Sales Associate", "Software Developer",
    "Designer", "Manager", "Student", "Chef", "Lawyer", "Pharmacist", "Retired",
)  # fmt: skip

# (state, share, first post code, step between the state's 40 post codes)
STATES: tuple[tuple[str, float, int, int], ...] = (
    ("California", 0.163, 90001, 100),
    ("Texas", 0.130, 75001, 100),
    ("Florida", 0.120, 32003, 50),
    ("New York", 0.110, 10001, 100),
    ("Washington", 0.090, 98001, 30),
    ("Illinois", 0.080, 60002, 60),
    ("Georgia", 0.080, 30002, 40),
    ("Colorado", 0.080, 80002, 40),
    ("Massachusetts", 0.070, 1001, 40),
    ("Arizona", 0.077, 85001, 30),
)
POST_CODES_PER_STATE = 40

PRODUCTS: tuple[tuple[str, float], ...] = (
    ("Cold Brew", 0.22), ("Latte", 0.18), ("Cappuccino", 0.15), ("Espresso", 0.12),
    ("Americano", 0.12), ("Mocha", 0.11), ("Flat White", 0.10),
)  # fmt: skip

FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James", "Isabella", "Lucas",
    "Mia", "Mateo", "Amelia", "Ethan", "Harper", "Aiden", "Priya", "Wei", "Fatima", "Diego",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Nguyen", "Patel", "Kim", "Chen", "Lopez", "Wilson", "Anderson", "Thomas",
    "Taylor", "Moore",
)  # fmt: skip

DOB_FIRST, DOB_LAST = dt.date(1950, 1, 1), dt.date(2005, 12, 31)
P_NULL_DOB, P_NULL_POST_CODE = 0.02, 0.01
POINTS_PER_DOLLAR = 0.1

# Draw numbers: each random quantity has its own, so adding one never shifts the others.
_TIER, _OCCUPATION, _INCOME_BAND, _INCOME, _SUBSCRIBER = 1, 2, 3, 4, 5
_STATE, _POST_CODE, _POST_CODE_NULL, _DOB, _DOB_NULL = 6, 7, 8, 9, 10
_SATISFACTION, _FIRST, _LAST, _COUNT_U1, _COUNT_U2, _POINTS = 11, 13, 14, 15, 16, 17
_CHANNEL, _PRODUCT, _AMOUNT_U1, _AMOUNT_U2, _TIME = 101, 102, 103, 104, 105
_CUSTOMER_DRAWS: tuple[int, ...] = (
    _TIER, _OCCUPATION, _INCOME_BAND, _INCOME, _SUBSCRIBER, _STATE, _POST_CODE, _POST_CODE_NULL,
    _DOB, _DOB_NULL, _SATISFACTION, _FIRST, _LAST, _COUNT_U1, _COUNT_U2, _POINTS,
)  # fmt: skip
_PURCHASE_DRAWS = (_CHANNEL, _PRODUCT, _AMOUNT_U1, _AMOUNT_U2, _TIME)

_MANTISSA = (1 << 52) - 1


def _uniform(seed: int, draw: int, *keys: Column) -> Column:
    """A uniform in (0, 1) from the hash of (seed, keys, draw); never exactly 0 or 1."""
    h = F.xxhash64(F.lit(seed), *keys, F.lit(draw)).bitwiseAND(F.lit(_MANTISSA))
    return (h.cast("double") + F.lit(0.5)) / F.lit(float(1 << 52))


def _draws(seed: int, draws: Sequence[int], *keys: Column) -> list[Column]:
    """Each draw as its own column ``_u<draw>``, hashed once however often it is used."""
    return [_uniform(seed, d, *keys).alias(f"_u{d}") for d in draws]


def _u(draw: int) -> Column:
    return F.col(f"_u{draw}")


def _normal(draws: tuple[int, int]) -> Column:
    """A standard normal by Box–Muller from two independent uniform draw columns."""
    return F.sqrt(F.lit(-2.0) * F.log(_u(draws[0]))) * F.cos(F.lit(2 * math.pi) * _u(draws[1]))


def _pick_index(u: Column, weights: Sequence[float]) -> Column:
    """The 0-based index of the weight bucket that ``u`` falls in (weights are normalised)."""
    total = float(sum(weights))
    expr: Column | None = None
    edge = 0.0
    for i, w in enumerate(weights[:-1]):
        edge += w / total
        expr = (
            F.when(u < F.lit(edge), F.lit(i))
            if expr is None
            else expr.when(u < F.lit(edge), F.lit(i))
        )
    last = F.lit(len(weights) - 1)
    return last if expr is None else expr.otherwise(last)


def _element(index: Column, values: Sequence[object]) -> Column:
    """``values[index]`` as a column (index 0-based)."""
    return F.element_at(F.array(*[F.lit(v) for v in values]), index + F.lit(1))


def _uniform_between(u: Column, low: float, high: float) -> Column:
    """Whole dollars spread evenly over [low, high]."""
    return F.round(F.lit(low) + u * F.lit(high - low), 0)


def _expected_count(mu: float) -> float:
    """E[max(1, round(X))] for X ~ Normal(mu, mu): 1 + sum over k >= 2 of P(X >= k - 1/2)."""
    sd = math.sqrt(mu)
    top = int(mu + 12 * sd) + 3
    return 1.0 + sum(0.5 * math.erfc((k - 0.5 - mu) / (sd * math.sqrt(2))) for k in range(2, top))


def purchase_count_location(mean: float) -> float:
    """The ``mu`` whose count ``max(1, round(Normal(mu, mu)))`` has the given mean (>= 1)."""
    if mean <= 1.0:
        return 1e-9
    low, high = 1e-9, mean + 10.0
    for _ in range(80):
        mid = (low + high) / 2
        if _expected_count(mid) < mean:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _group_spend_factors() -> tuple[float, float, float]:
    """Spend factors (high value, low-income teacher, everyone else) averaging to 1."""
    p_high_value = TIERS[2][1] * P_HIGH_INCOME_IF_HIGH_TIER
    p_teacher = (
        P_TEACHER * (1 - TIERS[2][1]) * P_LOW_INCOME_TEACHER * (1 - P_SUBSCRIBER_LOW_INCOME_TEACHER)
    )
    rest = (1 - p_high_value * SPEND_HIGH_VALUE - p_teacher * SPEND_LOW_INCOME_TEACHER) / (
        1 - p_high_value - p_teacher
    )
    return SPEND_HIGH_VALUE, SPEND_LOW_INCOME_TEACHER, rest


def _validate(customers: int, purchases_per_customer: float, partitions: int | None) -> None:
    problems: list[Problem] = []
    if not isinstance(customers, int) or isinstance(customers, bool) or not 1 <= customers <= 10**9:
        problems.append(
            Problem(
                "arguments",
                "--customers",
                f"must be a whole number from 1 to 1000000000, got {customers!r}",
            )
        )
    low = 1.0 / SPEND_LOW_INCOME_TEACHER
    if (
        not isinstance(purchases_per_customer, int | float)
        or not low <= purchases_per_customer <= 1000
    ):
        problems.append(
            Problem(
                "arguments",
                "--purchases-per-customer",
                f"must be a number from {low:.2f} to 1000, got {purchases_per_customer!r}",
            )
        )
    if partitions is not None and (
        not isinstance(partitions, int) or not 1 <= partitions <= 100_000
    ):
        problems.append(
            Problem(
                "arguments",
                "partitions",
                f"must be a whole number from 1 to 100000, got {partitions!r}",
            )
        )
    if problems:
        raise InputError(problems)


def _customers(
    spark: SparkSession, customers: int, seed: int, partitions: int, mean_count: float
) -> DataFrame:
    """The profile columns plus ``id`` and ``PurchaseCount`` (the customer's number of purchases)."""
    idc = F.col("id")
    tier = _element(_pick_index(_u(_TIER), [w for _, w in TIERS]), [t for t, _ in TIERS])
    occupation_weights = [P_TEACHER] + [(1 - P_TEACHER) / (len(OCCUPATIONS) - 1)] * (
        len(OCCUPATIONS) - 1
    )
    occupation = _element(_pick_index(_u(_OCCUPATION), occupation_weights), OCCUPATIONS)
    state_index = _pick_index(_u(_STATE), [w for _, w, _, _ in STATES])

    df = spark.range(0, customers, 1, partitions).select(idc, *_draws(seed, _CUSTOMER_DRAWS, idc))
    df = df.select(
        "*",
        F.format_string("C%07d", idc + F.lit(1)).alias("CustomerId"),
        tier.alias("LoyaltyTier"),
        occupation.alias("Occupation"),
        state_index.alias("_state"),
    )
    high = F.col("LoyaltyTier") == F.lit("high")
    teacher = F.col("Occupation") == F.lit("Teacher")
    band = _u(_INCOME_BAND)
    other_band = _pick_index(band, OTHER_INCOME_BANDS)
    income = (
        F.when(
            high,
            F.when(
                band < F.lit(P_HIGH_INCOME_IF_HIGH_TIER),
                _uniform_between(_u(_INCOME), 97001, 180000),
            ).otherwise(_uniform_between(_u(_INCOME), 50000, 97000)),
        )
        .when(
            teacher,
            F.when(
                band < F.lit(P_LOW_INCOME_TEACHER), _uniform_between(_u(_INCOME), 20000, 43999)
            ).otherwise(_uniform_between(_u(_INCOME), 44000, 90000)),
        )
        .when(other_band == F.lit(0), _uniform_between(_u(_INCOME), 20000, 43999))
        .when(other_band == F.lit(1), _uniform_between(_u(_INCOME), 44000, 97000))
        .otherwise(_uniform_between(_u(_INCOME), 97001, 180000))
    )
    df = df.withColumn("Income", income.cast("double"))
    low_income_teacher = teacher & ~high & (F.col("Income") < F.lit(44000.0))
    df = df.withColumn("_lowIncomeTeacher", low_income_teacher).withColumn(
        "EmailSubscriber",
        _u(_SUBSCRIBER)
        < F.when(F.col("_lowIncomeTeacher"), F.lit(P_SUBSCRIBER_LOW_INCOME_TEACHER)).otherwise(
            F.lit(P_SUBSCRIBER)
        ),
    )

    california_group = (F.col("_state") == F.lit(0)) & ~high & ~teacher
    p_low = F.when(california_group, F.lit(P_LOW_SATISFACTION_CA)).otherwise(
        F.lit(P_LOW_SATISFACTION)
    )
    s = _u(_SATISFACTION)
    satisfaction = (
        F.when(s < p_low, F.lit("low"))
        .when(s < p_low + (F.lit(1.0) - p_low) * F.lit(P_MEDIUM_IF_NOT_LOW), F.lit("medium"))
        .otherwise(F.lit("high"))
    )

    f_high, f_teacher, f_rest = _group_spend_factors()
    mu = (
        F.when(
            high & (F.col("Income") > F.lit(97000.0)),
            F.lit(purchase_count_location(mean_count * f_high)),
        )
        .when(
            F.col("_lowIncomeTeacher") & ~F.col("EmailSubscriber"),
            F.lit(purchase_count_location(mean_count * f_teacher)),
        )
        .otherwise(F.lit(purchase_count_location(mean_count * f_rest)))
    )
    df = df.withColumn("_mu", mu)
    mu = F.col("_mu")
    count = F.round(mu + F.sqrt(mu) * _normal((_COUNT_U1, _COUNT_U2))).cast("int")
    df = df.withColumn("PurchaseCount", F.greatest(F.lit(1), count))

    points = F.round(
        F.col("PurchaseCount")
        * F.lit((WEB_MEAN + STORE_MEAN) / 2 * POINTS_PER_DOLLAR)
        * (F.lit(0.6) + F.lit(0.8) * _u(_POINTS))
    ).cast("int")

    first = _element(F.floor(_u(_FIRST) * F.lit(len(FIRST_NAMES))).cast("int"), FIRST_NAMES)
    last = _element(F.floor(_u(_LAST) * F.lit(len(LAST_NAMES))).cast("int"), LAST_NAMES)
    post_code = F.lpad(
        (
            _element(F.col("_state"), [b for _, _, b, _ in STATES])
            + F.floor(_u(_POST_CODE) * F.lit(POST_CODES_PER_STATE)).cast("int")
            * _element(F.col("_state"), [st for _, _, _, st in STATES])
        ).cast("string"),
        5,
        "0",
    )
    dob_span = (DOB_LAST - DOB_FIRST).days + 1
    dob = F.date_add(F.lit(DOB_FIRST), F.floor(_u(_DOB) * F.lit(dob_span)).cast("int"))

    return df.select(
        "id",
        "CustomerId",
        first.alias("FirstName"),
        last.alias("LastName"),
        F.concat(
            F.lower(first),
            F.lit("."),
            F.lower(last),
            (idc + F.lit(1)).cast("string"),
            F.lit("@example.com"),
        ).alias("Email"),
        _element(F.col("_state"), [name for name, _, _, _ in STATES]).alias("State"),
        F.when(_u(_POST_CODE_NULL) >= F.lit(P_NULL_POST_CODE), post_code).alias("PostCode"),
        F.when(_u(_DOB_NULL) >= F.lit(P_NULL_DOB), dob).alias("DateOfBirth"),
        "Income",
        "LoyaltyTier",
        "Occupation",
        "EmailSubscriber",
        points.alias("RewardPoints"),
        satisfaction.alias("CustomerSatisfaction"),
        "PurchaseCount",
    )


def _purchases(customers: DataFrame, seed: int, end: dt.date) -> DataFrame:
    """One row per purchase: ``PurchaseCount`` rows per customer, each with its own draws."""
    k = F.explode(F.sequence(F.lit(1), F.col("PurchaseCount"))).alias("k")
    rows = customers.select("id", "CustomerId", k)
    rows = rows.select("*", *_draws(seed, _PURCHASE_DRAWS, F.col("id"), F.col("k")))
    rows = rows.withColumn("_web", _u(_CHANNEL) < F.lit(P_WEB))
    web = F.col("_web")
    log_mean = F.when(web, F.lit(math.log(WEB_MEAN))).otherwise(F.lit(math.log(STORE_MEAN)))
    sigma = F.lit(AMOUNT_SIGMA)
    amount = F.exp(
        log_mean - sigma * sigma / F.lit(2.0) + sigma * _normal((_AMOUNT_U1, _AMOUNT_U2))
    )
    start = dt.datetime.combine(end - dt.timedelta(days=HISTORY_DAYS), dt.time(), tzinfo=dt.UTC)
    seconds = F.floor(_u(_TIME) * F.lit(HISTORY_DAYS * 86400))
    product_index = _pick_index(_u(_PRODUCT), [w for _, w in PRODUCTS])
    return rows.select(
        F.concat(F.col("CustomerId"), F.lit("-"), F.col("k").cast("string")).alias("PurchaseId"),
        "CustomerId",
        F.timestamp_seconds(F.lit(int(start.timestamp())) + seconds).alias("PurchaseDate"),
        F.when(web, F.lit("web")).otherwise(F.lit("store")).alias("Channel"),
        _element(product_index, [p for p, _ in PRODUCTS]).alias("Product"),
        F.round(amount, 2).alias("Amount"),
    )


def _rows_written(spark: SparkSession, path: str) -> int:
    """Rows of the table's last commit, from Delta's commit metrics (no second scan)."""
    row = DeltaTable.forPath(spark, path).history(1).select("operationMetrics").first()
    metrics = (row[0] if row else None) or {}
    if "numOutputRows" in metrics:
        return int(metrics["numOutputRows"])
    return int(spark.read.format("delta").load(path).count())


def generate_contoso(
    spark: SparkSession,
    lake: Lake,
    *,
    customers: int = 5000,
    seed: int = 42,
    end: dt.date = DEFAULT_END,
    purchases_per_customer: float = DEFAULT_PURCHASES_PER_CUSTOMER,
    partitions: int | None = None,
) -> dict[str, int]:
    """Write the Contoso ``Customer`` profile and ``Purchases`` activity; return their row counts.

    ``purchases_per_customer`` is the expected number of purchases per customer; purchase
    times fall in the ``HISTORY_DAYS`` before ``end``. ``partitions`` (default: enough for
    ~200k customers each, at least the cluster's parallelism) changes file layout only,
    never the data.
    """
    _validate(customers, purchases_per_customer, partitions)
    seed = int(seed)
    parts = partitions or max(spark.sparkContext.defaultParallelism, math.ceil(customers / 200_000))
    people = _customers(spark, customers, seed, parts, float(purchases_per_customer))
    counts: dict[str, int] = {}
    targets = (
        ("Customer", lake.profile_path("Customer"), people.drop("id", "PurchaseCount")),
        ("Purchases", lake.activity_path("Purchases"), _purchases(people, seed, end)),
    )
    for name, path, df in targets:
        started = time.perf_counter()
        lake.overwrite(
            df, path, metadata=f"contoso seed={seed} customers={customers}", change_feed=True
        )
        counts[name] = _rows_written(spark, path)
        log.info(
            "contoso %s: %d rows written to %s in %.1f s",
            name,
            counts[name],
            path,
            time.perf_counter() - started,
        )
    return counts
