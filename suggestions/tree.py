"""Mining: encode the influencers, fit Spark ML's decision tree, walk its nodes into paths.

Numeric influencers are doubles with nulls mapped to a sentinel below the minimum;
categorical ones (booleans as ``true``/``false``) are indexed strings with nulls as the
``(missing)`` label, so the tree can isolate missing values and a rule can name them.
The tree is a regressor for a numeric target and a classifier for a categorical one.
PySpark has no Python node API, so the fitted JVM model is walked through Py4J
(``rootNode``, ``split``, ``leftCategories``); the work is bounded by the number of nodes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.ml.classification import DecisionTreeClassificationModel, DecisionTreeClassifier
from pyspark.ml.feature import StringIndexer, StringIndexerModel, VectorAssembler
from pyspark.ml.regression import DecisionTreeRegressionModel, DecisionTreeRegressor
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from suggestions.rules import MISSING, CategoricalRule, NumericRule, Rule, roundest_between

__all__ = [
    "Feature",
    "FittedTree",
    "PathTest",
    "TreePath",
    "fit_tree",
    "path_rules",
    "provisional_cuts",
    "rounding_map",
    "walk_tree",
]

log = logging.getLogger(__name__)


@dataclass
class Feature:
    """One influencer as the tree sees it (``column`` is the encoded column)."""

    name: str
    numeric: bool
    column: str
    boolean: bool = False
    has_nulls: bool = False
    minimum: float | None = None
    sentinel: float | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class PathTest:
    """One split on the way to a node: ``x <= threshold`` (or ``>``), or ``x in labels``."""

    feature: int
    threshold: float | None = None
    left: bool = True
    labels: frozenset[str] = frozenset()


@dataclass
class TreePath:
    """A non-root node: the tests leading to it, its depth, training count and impurity stats.

    ``stats`` is Spark's impurity calculator state: ``(count, sum, sum of squares)`` for a
    regression tree, the class counts (in label index order) for a classification tree.
    """

    tests: tuple[PathTest, ...]
    depth: int
    count: int
    leaf: bool
    stats: tuple[float, ...] = ()


@dataclass
class FittedTree:
    model: PipelineModel
    features: list[Feature]
    target_labels: tuple[str, ...] = ()
    paths: list[TreePath] = field(default_factory=list)
    text: str = ""
    root_stats: tuple[float, ...] = ()


def fit_tree(
    train: DataFrame,
    features: list[Feature],
    *,
    numeric_target: bool,
    max_depth: int,
    min_instances: int,
    max_bins: int,
    seed: int,
    target_labels: Sequence[str] = (),
) -> FittedTree:
    """Fit the pipeline (indexers, assembler, tree) on ``train`` (columns ``_label`` and features).

    ``train`` should be cached: the indexers read it, then the stages are applied once
    into a cached frame of assembled rows, which the tree's passes (metadata, split
    candidates, one per level) read; the fitted stages form one ``PipelineModel``.
    Categorical features that come with their ``labels`` (and a categorical target with
    ``target_labels``), in alphabetical order, are indexed without a pass over ``train``.
    """
    cats = [f for f in features if not f.numeric]
    stages: list[Any] = []
    if cats:
        stages.append(_indexer(train, cats))
    inputs = [f.column if f.numeric else f"{f.column}_idx" for f in features]
    stages.append(VectorAssembler(inputCols=inputs, outputCol="_features"))
    bins = max(max_bins, *(len(f.labels) + 2 for f in cats)) if cats else max_bins
    params: dict[str, Any] = {
        "featuresCol": "_features",
        "maxDepth": max_depth,
        "minInstancesPerNode": max(1, min_instances),
        "maxBins": bins,
        "seed": seed,
    }
    tree_stage: Any
    if numeric_target:
        tree_stage = DecisionTreeRegressor(labelCol="_label", **params)
    else:
        if target_labels:
            stages.append(
                StringIndexerModel.from_labels(list(target_labels), "_label", "_label_idx")
            )
        else:
            stages.append(
                StringIndexer(
                    inputCol="_label", outputCol="_label_idx", stringOrderType="alphabetAsc"
                ).fit(train)
            )
        tree_stage = DecisionTreeClassifier(labelCol="_label_idx", **params)
    assembled = PipelineModel(stages=stages).transform(train)
    label = "_label" if numeric_target else "_label_idx"
    assembled = assembled.select(label, "_features").persist()
    try:
        stages.append(tree_stage.fit(assembled))
    finally:
        assembled.unpersist()
    model = PipelineModel(stages=stages)
    fitted = FittedTree(model, features)
    if not numeric_target:
        fitted.target_labels = tuple(model.stages[-2].labels)  # type: ignore[attr-defined]
    tree: DecisionTreeRegressionModel | DecisionTreeClassificationModel = model.stages[-1]  # type: ignore[assignment]
    fitted.paths = walk_tree(tree, features)
    fitted.root_stats = _stats(tree._java_obj.rootNode())  # type: ignore[union-attr]
    fitted.text = _tree_text(tree, features)
    log.info(
        "tree: depth %d, %d nodes, %d candidate paths", tree.depth, tree.numNodes, len(fitted.paths)
    )
    return fitted


def _indexer(train: DataFrame, cats: Sequence[Feature]) -> StringIndexerModel:
    """One indexer for the categorical features: from their labels when all have them."""
    inputs = [f.column for f in cats]
    outputs = [f"{f.column}_idx" for f in cats]
    if all(f.labels for f in cats):
        return StringIndexerModel.from_arrays_of_labels(
            [list(f.labels) for f in cats], inputs, outputs, handleInvalid="keep"
        )
    model = StringIndexer(
        inputCols=inputs, outputCols=outputs, stringOrderType="alphabetAsc", handleInvalid="keep"
    ).fit(train)
    for f, labels in zip(cats, model.labelsArray, strict=True):
        f.labels = tuple(labels)
    return model


def _stats(node: Any) -> tuple[float, ...]:
    return tuple(float(x) for x in node.impurityStats().stats())


def _kind(obj: Any) -> str:
    return str(obj.getClass().getSimpleName())


def walk_tree(tree: Any, features: Sequence[Feature]) -> list[TreePath]:
    """Every non-root node as a path of tests, depth first, left child first."""
    paths: list[TreePath] = []
    stack: list[tuple[Any, tuple[PathTest, ...]]] = [(tree._java_obj.rootNode(), ())]
    while stack:
        node, tests = stack.pop()
        leaf = _kind(node) == "LeafNode"
        if tests:
            count = int(node.impurityStats().count())
            paths.append(TreePath(tests, len(tests), count, leaf, _stats(node)))
        if leaf:
            continue
        split = node.split()
        idx = int(split.featureIndex())
        if _kind(split) == "ContinuousSplit":
            t = float(split.threshold())
            left = PathTest(idx, threshold=t, left=True)
            right = PathTest(idx, threshold=t, left=False)
        else:
            labels = features[idx].labels
            left_ids = {int(c) for c in split.leftCategories()}
            right_ids = {int(c) for c in split.rightCategories()}
            # handleInvalid="keep" adds an index past the labels; it never holds rows.
            left = PathTest(idx, labels=frozenset(labels[i] for i in left_ids if i < len(labels)))
            right = PathTest(idx, labels=frozenset(labels[i] for i in right_ids if i < len(labels)))
        stack.append((node.rightChild(), (*tests, right)))
        stack.append((node.leftChild(), (*tests, left)))
    return paths


def rounding_map(
    df: DataFrame, features: Sequence[Feature], paths: Sequence[TreePath]
) -> dict[tuple[int, float], float | None]:
    """For each (feature, threshold), the roundest cut that splits the data exactly as the threshold.

    One Spark pass: the largest value at or below and the smallest above each threshold,
    over the real (non-null) values. None means the threshold lies below every value
    (it only separates the nulls' sentinel from the rest).
    """
    pairs = _thresholds(paths)
    if not pairs:
        return {}
    aggs = []
    for i, (fi, thr) in enumerate(pairs):
        x = F.col(features[fi].name).cast("double")
        aggs.append(F.max(F.when(x <= F.lit(thr), x)).alias(f"lo{i}"))
        aggs.append(F.min(F.when(x > F.lit(thr), x)).alias(f"hi{i}"))
    row = df.agg(*aggs).first()
    assert row is not None
    out: dict[tuple[int, float], float | None] = {}
    for i, key in enumerate(pairs):
        lo, hi = row[f"lo{i}"], row[f"hi{i}"]
        if lo is None:
            out[key] = None
        elif hi is None:
            out[key] = float(lo)
        else:
            out[key] = roundest_between(float(lo), float(hi))
    return out


def provisional_cuts(
    features: Sequence[Feature], paths: Sequence[TreePath]
) -> dict[tuple[int, float], float | None]:
    """``rounding_map`` without its pass: each threshold itself, or None below the minimum.

    A threshold and its rounded cut split every row alike, and a threshold below a
    number's smallest value (``Feature.minimum``, from the profile pass) is the one
    ``rounding_map`` maps to None. So ``path_rules`` built from these select the same
    rows, in the same rules, as those built from the rounded cuts; only the numbers
    differ, and a run swaps the rounded ones in once ``rounding_map`` has answered.
    """
    out: dict[tuple[int, float], float | None] = {}
    for fi, threshold in _thresholds(paths):
        low = features[fi].minimum
        out[(fi, threshold)] = None if low is None or threshold < low else threshold
    return out


def _thresholds(paths: Sequence[TreePath]) -> list[tuple[int, float]]:
    """The distinct (feature, threshold) pairs of the paths' numeric tests, sorted."""
    return sorted(
        {(t.feature, t.threshold) for p in paths for t in p.tests if t.threshold is not None}
    )


def path_rules(
    path: TreePath, features: Sequence[Feature], cuts: dict[tuple[int, float], float | None]
) -> list[Rule]:
    """Merge a path's tests per feature (intervals, label sets) into rules, in feature order."""
    lows: dict[int, float | None] = {}
    highs: dict[int, float | None] = {}
    below_min: dict[int, bool] = {}  # a right turn at a sentinel-only threshold: nulls out
    only_nulls: dict[int, bool] = {}
    allowed: dict[int, frozenset[str]] = {}
    for t in path.tests:
        f = features[t.feature]
        if t.threshold is None:
            allowed[t.feature] = allowed.get(t.feature, frozenset(f.labels)) & t.labels
            continue
        cut = cuts.get((t.feature, t.threshold), t.threshold)
        if t.left:
            if cut is None:
                only_nulls[t.feature] = True
            else:
                old = highs.get(t.feature)
                highs[t.feature] = cut if old is None else min(old, cut)
        else:
            if cut is None:
                below_min[t.feature] = True
            else:
                old = lows.get(t.feature)
                lows[t.feature] = cut if old is None else max(old, cut)
    rules: list[Rule] = []
    for i, f in enumerate(features):
        if f.numeric and (i in lows or i in highs or i in below_min or i in only_nulls):
            nulls = f.has_nulls and i not in lows and i not in below_min
            empty = only_nulls.get(i, False)
            low, high = lows.get(i), highs.get(i)
            if low is not None and high is not None and low >= high:
                empty = True
            rules.append(NumericRule(f.name, low, high, nulls=nulls, empty=empty))
        elif not f.numeric and i in allowed:
            rules.append(CategoricalRule(f.name, tuple(sorted(allowed[i])), f.labels, f.boolean))
    return rules


def _tree_text(tree: Any, features: Sequence[Feature]) -> str:
    """Spark's debug string with a legend of feature numbers and category indices."""
    legend = []
    for i, f in enumerate(features):
        if f.numeric:
            extra = f" (nulls as {f.sentinel:g})" if f.has_nulls and f.sentinel is not None else ""
            legend.append(f"feature {i} = {f.name}{extra}")
        else:
            cats = ", ".join(f"{j}={label}" for j, label in enumerate(f.labels))
            legend.append(f"feature {i} = {f.name} [{cats}]")
    note = f"(categories: {MISSING} is null)"
    return "\n".join([*legend, note, "", str(tree.toDebugString)])
