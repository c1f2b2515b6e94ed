"""Overlap counts against Python set arithmetic on the same memberships."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohortlake.catalog import FieldRef
from insights.overlap import COLLECT_REGIONS, TOP_REGIONS, region_rows, segment_overlap


def _tables(spark, members: list[set[int]]):
    return [spark.createDataFrame([(c,) for c in sorted(m)], "CustomerId long") for m in members]


def _check(spark, members: list[set[int]], collect_regions: int = COLLECT_REGIONS):
    names = tuple(f"S{i}" for i in range(len(members)))
    tables = _tables(spark, members)
    result, regions = segment_overlap(
        spark, tables, names, "CustomerId", collect_regions=collect_regions
    )
    try:
        region_table = {
            tuple(r["Segments"]): (r["Members"], r["Degree"])
            for r in region_rows(regions, names).collect()
        }
    finally:
        regions.unpersist()
    k = len(members)
    assert result.sizes == [len(m) for m in members]
    for i, j in itertools.combinations(range(k), 2):
        shared = len(members[i] & members[j])
        union = len(members[i] | members[j])
        assert result.shared[(i, j)] == shared
        assert result.share(i, j) == (shared / len(members[i]) if members[i] else None)
        assert result.share(j, i) == (shared / len(members[j]) if members[j] else None)
        assert result.jaccard(i, j) == (shared / union if union else None)
    for i in range(k):
        others = set().union(*(members[j] for j in range(k) if j != i))
        assert result.exclusive[i] == len(members[i] - others)
    assert result.in_all == len(set.intersection(*members))
    # Every customer's exact set of segments, counted.
    everyone = set().union(*members)
    expected: dict[tuple[str, ...], int] = {}
    for c in everyone:
        key = tuple(names[i] for i in range(k) if c in members[i])
        expected[key] = expected.get(key, 0) + 1
    assert {key: v[0] for key, v in region_table.items()} == expected
    assert all(v[1] == len(key) for key, v in region_table.items())
    assert result.regions_total == len(expected)
    top = {r.segments: r.members for r in result.regions}
    assert len(top) == min(TOP_REGIONS, len(expected))
    assert all(expected[key] == v for key, v in top.items())
    rest = [v for key, v in expected.items() if key not in top]
    assert not rest or min(top.values()) >= max(rest)
    return result


def test_two_segments(spark):
    _check(spark, [set(range(0, 60)), set(range(40, 100))])


def test_three_segments_with_an_empty_one(spark):
    result = _check(spark, [set(range(0, 50)), set(), set(range(25, 75))])
    assert result.sizes[1] == 0 and result.share(1, 0) is None
    assert result.in_all == 0


@pytest.mark.parametrize(
    "collect_regions", [COLLECT_REGIONS, 7, 0], ids=["driver-sums", "over-the-cap", "spark-sums"]
)
def test_twelve_segments_random_with_identical_and_empty(spark, collect_regions):
    rng = random.Random(11)
    members = [set(rng.sample(range(400), rng.randint(20, 200))) for _ in range(10)]
    members.append(set(members[3]))  # identical to segment 3
    members.append(set())
    result = _check(spark, members, collect_regions)
    assert result.jaccard(3, 10) == 1.0
    assert result.exclusive[3] == 0 and result.exclusive[10] == 0


@pytest.mark.parametrize("collect_regions", [COLLECT_REGIONS, 0], ids=["driver-sums", "spark-sums"])
def test_twenty_segments_more_possible_regions_than_the_cap(spark, collect_regions):
    """2**20 - 1 possible regions: the driver sums only the few hundred there are."""
    rng = random.Random(20)
    members = [set(rng.sample(range(600), rng.randint(1, 300))) for _ in range(20)]
    assert COLLECT_REGIONS < (1 << 20) - 1
    _check(spark, members, collect_regions)


def test_fifty_segments_the_most_a_definition_allows(spark):
    """Bit 49 and the all-segments mask 2**50 - 1 survive the long masks and numpy sums."""
    rng = random.Random(50)
    core = set(range(5))  # in every segment
    members = [core | set(rng.sample(range(5, 120), rng.randint(40, 100))) for _ in range(48)]
    members += [set(range(120)), set(range(120))]
    result = _check(spark, members)
    assert result.in_all == 5 and result.exclusive == [0] * 50


def test_every_segment_empty(spark):
    result = _check(spark, [set(), set(), set()])
    assert result.sizes == [0, 0, 0] and result.regions_total == 0 and result.regions == []


def test_identical_segments(spark):
    result = _check(spark, [set(range(30)), set(range(30))])
    assert result.in_all == 30 and result.jaccard(0, 1) == 1.0 and result.exclusive == [0, 0]


def test_field_distributions_of_shared_and_exclusive_members(spark):
    rng = np.random.default_rng(5)
    n = 300
    pdf = pd.DataFrame(
        {
            "CustomerId": np.arange(n),
            "Spend": np.round(rng.gamma(2.0, 50.0, n), 1),
            "State": rng.choice(["CA", "WA", "NY"], n),
        }
    )
    a, b = set(range(0, 180)), set(range(120, 260))
    customers = spark.createDataFrame(
        [(int(r.CustomerId), float(r.Spend), str(r.State)) for r in pdf.itertuples()],
        "CustomerId long, Spend double, State string",
    )
    fields = (
        FieldRef("Spend", "number", "Spend", "measure"),
        FieldRef("State", "string", "State", "profile"),
    )
    result, regions = segment_overlap(
        spark, _tables(spark, [a, b]), ("A", "B"), "CustomerId", customers, fields
    )
    regions.unpersist()
    groups = {"all": a & b, "A": a - b, "B": b - a}
    spend = pdf.set_index("CustomerId").Spend
    in_groups = spend.loc[sorted(set().union(*groups.values()))]
    lo, width = in_groups.min(), (in_groups.max() - in_groups.min()) / 20
    for group, ids in groups.items():
        values = spend.loc[sorted(ids)]
        expected = np.bincount(
            np.minimum(np.floor((values - lo) / width).astype(int), 19), minlength=20
        )
        got = sorted(
            (d.bin, d.members)
            for d in result.distributions
            if d.field == "Spend" and d.group == group
        )
        assert [g[1] for g in got] == expected.tolist()
        shares = (
            pdf.set_index("CustomerId")
            .State.loc[sorted(ids)]
            .value_counts(normalize=True)
            .to_dict()
        )
        got_state = {
            d.category: d.share
            for d in result.distributions
            if d.field == "State" and d.group == group
        }
        assert got_state == pytest.approx(shares, abs=1e-12)


def test_charts_venn_for_three_upset_and_heatmap_for_more(tmp_path):
    from insights.charts import overlap_charts
    from insights.overlap import Overlap, Region

    def make(k: int) -> Overlap:
        names = tuple(f"S{i}" for i in range(k))
        return Overlap(
            names,
            [10 * (i + 1) for i in range(k)],
            {(i, j): i + j for i in range(k) for j in range(i + 1, k)},
            [i for i in range(k)],
            1,
            [Region(names[: i + 1], 5 - i % 5) for i in range(k)],
            k,
            [],
        )

    three = overlap_charts(make(3), tmp_path / "three", "Three")
    many = overlap_charts(make(6), tmp_path / "many", "Many")
    assert [Path(p).name for p in three] == ["venn.png"]
    assert [Path(p).name for p in many] == ["upset.png", "heatmap.png"]
    for p in three + many:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
