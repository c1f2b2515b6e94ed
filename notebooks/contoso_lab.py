# Databricks notebook source
# MAGIC %md
# MAGIC # Contoso Coffee: create segments, with Cohortlake
# MAGIC
# MAGIC The lab "Create segments" as Python: generate the Contoso lakehouse, compute
# MAGIC measures, create the three segments, compare them, expand one with look-alike
# MAGIC customers and let the data suggest segments. Runs as a Databricks-style notebook,
# MAGIC in Jupyter (jupytext reads this format), or top to bottom with
# MAGIC `python notebooks/contoso_lab.py [ROOT]`.

# COMMAND ----------

import sys
from pathlib import Path

from cohortlake import load_context, parse_as_of

REPO = Path(__file__).resolve().parent.parent if "__file__" in globals() else Path.cwd()
ROOT = (
    sys.argv[1]
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-")
    else str(REPO / "lakehouse")
)
ctx = load_context(REPO / "conf", root=ROOT)
AS_OF = parse_as_of("2026-07-01")
spark = ctx.spark

# COMMAND ----------

# MAGIC %md ## The unified profile and its measures

# COMMAND ----------

from cohortlake.contoso import generate_contoso
from cohortlake.measures import compute_measures

print(generate_contoso(spark, ctx.lake, customers=5000, seed=42))
compute_measures(spark, ctx.lake, ctx.catalog, AS_OF)
ctx.lake.read(ctx.lake.measures_path()).describe().show()

# COMMAND ----------

# MAGIC %md ## Task 1 and 2: quick create from a profile field and from a measure

# COMMAND ----------

from segmentation.quick import quick_create

print(
    quick_create(
        ctx,
        field_name="State",
        op="eq",
        value="California",
        name="Customers from California",
        as_of=AS_OF,
    ).render()
)
print(
    quick_create(
        ctx,
        field_name="Average Web Purchase ($)",
        op="gt",
        value="138",
        name="High Value Online Customers",
        as_of=AS_OF,
    ).render()
)

# COMMAND ----------

# MAGIC %md ## Task 3 and 4: Summer Promotion from scratch, run every segment, review

# COMMAND ----------

from segmentation.preview import preview_segment
from segmentation.run import run_segments

print(Path(REPO / "conf" / "segments" / "summer_promotion.yaml").read_text())
for run in run_segments(ctx, as_of=AS_OF):
    print(run.segment, run.members, run.status)
print(
    preview_segment(
        ctx, "SummerPromotion", limit=5, columns=["State", "AverageStorePurchase"]
    ).render()
)

# COMMAND ----------

# MAGIC %md ## Task 5: segment insights (differentiators and overlap)

# COMMAND ----------

from insights import run_insights

for result in run_insights(ctx, as_of=AS_OF):
    print(result)
spark.read.format("delta").load(
    ctx.lake.insight_path("HighValueOnlinevsCustomersfromCalifornia")
).show(truncate=False)

# COMMAND ----------

# MAGIC %md ## Task 6: segment expansion (find similar customers)

# COMMAND ----------

from expansion import run_expansions

for result in run_expansions(ctx, as_of=AS_OF):
    print(
        result.run.segment,
        result.run.members,
        f"held-out recall {result.held_out.recall:.2f} vs random {result.held_out.random_recall:.2f}",
    )

# COMMAND ----------

# MAGIC %md ## Exercise 2: suggested segments, and saving one as a segment

# COMMAND ----------

from suggestions import run_suggestions, save_configured_suggestions

for result in run_suggestions(ctx, as_of=AS_OF):
    spark.read.format("delta").load(ctx.lake.suggestion_path(result.output)).select(
        "Rank", "Summary"
    ).show(truncate=False)
for path in save_configured_suggestions(ctx):
    print("saved", path)

# COMMAND ----------

from cohortlake.report import write_report

print("report:", write_report(ctx))
