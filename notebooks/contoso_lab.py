# Databricks notebook source
# MAGIC %md
# MAGIC # Contoso Coffee: create segments, with Cohortlake
# MAGIC
# MAGIC The lab "Create segments" as Python: compute measures, create the three segments,
# MAGIC compare them, expand one with look-alike customers and let the data suggest segments.
# MAGIC It runs as a Databricks notebook, in Jupyter (open it with jupytext) or top to bottom
# MAGIC with `python notebooks/contoso_lab.py --generate` (`--help` lists the parameters).
# MAGIC
# MAGIC By default it only reads: it works on the lakehouse that is there, generates the
# MAGIC Contoso demo data only with GENERATE, and writes definition files (quick create,
# MAGIC saved suggestions) only with WRITE_DEFINITIONS, so it can be scheduled over real data.
# MAGIC See `docs/notebook.md`.

# COMMAND ----------

# Install Cohortlake where the notebook runs (once per cluster or kernel), then restart
# Python. Remove the leading "#" of the line that fits and put in your path; as it
# stands this cell does nothing. On Databricks keep the runtime's own pyspark and
# delta-spark: install the wheel of `make dist` with --no-deps (see docs/notebook.md).
#
#   %pip install -e /path/to/cohortlake
#   %pip install --no-deps /path/to/dist/cohortlake-0.1.0-py3-none-any.whl

# COMMAND ----------

# MAGIC %md ## Parameters
# MAGIC
# MAGIC | parameter | Databricks widget | environment (Jupyter) | script |
# MAGIC | --- | --- | --- | --- |
# MAGIC | lakehouse root (default: `root` of `<conf>/lakehouse.yaml`, beside the conf folder) | `root` | `COHORTLAKE_ROOT` | `--root` |
# MAGIC | configuration folder (default: `./conf`, `../conf` from `notebooks/`) | `conf` | `COHORTLAKE_CONF` | `--conf` |
# MAGIC | as-of date (empty: now) | `as_of` | `COHORTLAKE_AS_OF` | `--as-of` |
# MAGIC | generate the Contoso demo data first | `generate` | `COHORTLAKE_GENERATE` | `--generate` |
# MAGIC | customers to generate | `customers` | `COHORTLAKE_CUSTOMERS` | `--customers` |
# MAGIC | write definition files | `write_definitions` | `COHORTLAKE_WRITE_DEFINITIONS` | `--write-definitions` |

# COMMAND ----------

import argparse
import os
from pathlib import Path

from cohortlake.config import load_lakehouse_config

_DEFAULTS = {
    "root": "",
    "conf": "",
    "as_of": "2026-07-01",
    "generate": "false",
    "customers": "5000",
    "write_definitions": "false",
}
_FLAGS = ("generate", "write_definitions")
_HELP = {
    "root": "lakehouse root (default: root of <conf>/lakehouse.yaml)",
    "conf": "configuration folder (default: ./conf, else conf/ of this repository)",
    "as_of": "as-of date or timestamp; empty means now",
    "generate": "generate the Contoso demo data first",
    "customers": "customers to generate",
    "write_definitions": "write quick-create and saved-suggestion definition files",
}


def _is_true(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "y", "on")


params = {k: os.environ.get(f"COHORTLAKE_{k.upper()}", v) for k, v in _DEFAULTS.items()}
if "dbutils" in globals():  # Databricks: one widget per parameter, above the notebook
    widgets = globals()["dbutils"].widgets
    for key, default in params.items():
        widgets.text(key, default)
    params = {key: widgets.get(key) for key in params}
elif "__file__" in globals():  # a plain script: the command line wins over the environment
    parser = argparse.ArgumentParser(description="The Contoso Coffee lab, with Cohortlake.")
    parser.add_argument("root_arg", nargs="?", metavar="ROOT", help="same as --root")
    for key, default in params.items():
        option = "--" + key.replace("_", "-")
        if key in _FLAGS:
            parser.add_argument(
                option,
                action=argparse.BooleanOptionalAction,
                default=_is_true(default),
                help=_HELP[key],
            )
        else:
            parser.add_argument(
                option, default=default, help=_HELP[key] + (f" [{default}]" if default else "")
            )
    args = vars(parser.parse_args())
    args["root"] = args.pop("root_arg") or args["root"]
    params = {key: str(value) for key, value in args.items()}


def _find_conf(given: str) -> Path:
    """The configuration folder: as given, else ./conf, ../conf from notebooks/, or beside the file."""
    cwd = Path.cwd()
    tried = [Path(given)] if given else [cwd / "conf"]
    if not given and cwd.name == "notebooks":
        tried.append(cwd.parent / "conf")
    if not given and "__file__" in globals():
        tried.append(Path(globals()["__file__"]).resolve().parent.parent / "conf")
    for folder in tried:
        if (folder / "catalog.yaml").is_file():
            return folder.resolve()
    raise SystemExit(
        f"configuration folder not found (tried {', '.join(str(t) for t in tried)}): "
        "set CONF (widget conf, COHORTLAKE_CONF or --conf) to the folder holding catalog.yaml"
    )


CONF = _find_conf(params["conf"])
# A relative root in lakehouse.yaml is beside the conf folder, whatever the working folder.
ROOT = params["root"] or load_lakehouse_config(CONF / "lakehouse.yaml").resolved_root(CONF.parent)
AS_OF_TEXT = params["as_of"].strip()
GENERATE = _is_true(params["generate"])
CUSTOMERS = int(params["customers"])
WRITE_DEFINITIONS = _is_true(params["write_definitions"])
print(f"conf {CONF}\nroot {ROOT}\nas-of {AS_OF_TEXT or 'now'}")
print(f"generate {GENERATE} ({CUSTOMERS} customers), write definitions {WRITE_DEFINITIONS}")

# COMMAND ----------

from cohortlake import load_context, parse_as_of

ctx = load_context(CONF, root=ROOT)
AS_OF = parse_as_of(AS_OF_TEXT or None)
spark = ctx.spark  # the active session on Databricks; a local Delta-enabled one elsewhere

# COMMAND ----------

# MAGIC %md ## The unified profile and its measures

# COMMAND ----------

from cohortlake.measures import compute_measures
from lab.contoso import generate_contoso

if GENERATE:
    print(generate_contoso(spark, ctx.lake, customers=CUSTOMERS, seed=42))
ctx.check_tables()  # the profile is there, generated or loaded, before anything is computed
compute_measures(spark, ctx.lake, ctx.catalog, AS_OF)
ctx.lake.read(ctx.lake.measures_path()).describe().show()

# COMMAND ----------

# MAGIC %md ## Task 1 and 2: quick create from a profile field and from a measure
# MAGIC
# MAGIC Each shows the field's data and the segment's estimated size; the definition file
# MAGIC is written to `<conf>/segments` only with WRITE_DEFINITIONS.

# COMMAND ----------

from cohortlake.errors import InputError
from segmentation.quick import quick_create

QUICK_CREATES = [
    {"field_name": "State", "op": "eq", "value": "California", "name": "Customers from California"},
    {
        "field_name": "Average Web Purchase ($)",
        "op": "gt",
        "value": "138",
        "name": "High Value Online Customers",
    },
]
for spec in QUICK_CREATES:
    try:
        print(quick_create(ctx, **spec, as_of=AS_OF, write=WRITE_DEFINITIONS).render())
    except InputError as exc:  # e.g. a different definition of that name exists: keep it
        print(f"quick create {spec['name']!r} skipped: {exc}")

# COMMAND ----------

# MAGIC %md ## Task 3 and 4: run every segment of the configuration, review one

# COMMAND ----------

from segmentation.preview import preview_segment
from segmentation.run import run_segments

summer = CONF / "segments" / "summer_promotion.yaml"
if summer.is_file():
    print(summer.read_text())
segment_runs = run_segments(ctx, as_of=AS_OF)
for run in segment_runs:
    print(f"{run.segment:<40} {run.members:>9,} members ({run.status})")
shown = "SummerPromotion" if any(r.segment == "SummerPromotion" for r in segment_runs) else None
if shown is None and segment_runs:
    shown = segment_runs[0].segment
if shown:
    columns = ["State", "AverageStorePurchase"] if shown == "SummerPromotion" else []
    print(preview_segment(ctx, shown, limit=5, columns=columns).render())

# COMMAND ----------

# MAGIC %md ## Task 5: segment insights (differentiators and overlap)

# COMMAND ----------

from insights import run_insights

for result in run_insights(ctx, as_of=AS_OF):
    print(result.kind, result.output, *result.charts, sep="\n  ")
    for table in result.tables:
        spark.read.format("delta").load(table).show(10, truncate=False)

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
# MAGIC
# MAGIC The `save:` entries of `<conf>/suggestions` are written as segment definitions (and
# MAGIC run) only with WRITE_DEFINITIONS; otherwise the suggestion each would save is shown.

# COMMAND ----------

from cohortlake.config import load_document
from cohortlake.errors import RunFailure
from suggestions import (
    load_suggestion_runs,
    run_suggestions,
    save_configured_suggestions,
    suggestion_row,
)

for result in run_suggestions(ctx, as_of=AS_OF):
    print(f"{result.output}: {result.kept} significant of {result.candidates} candidates")
    spark.read.format("delta").load(result.path).select("Rank", "Summary").show(truncate=False)
if WRITE_DEFINITIONS:
    try:
        saved = save_configured_suggestions(ctx)
    except RunFailure as exc:  # nothing significant to save on this data
        print("no suggestion saved:", exc)
        saved = []
    for path in saved:
        print("saved", path)
    if saved:
        outputs = [load_document(path)["output"] for path in saved]
        for run in run_segments(ctx, only=outputs, as_of=AS_OF):
            print(f"{run.segment:<40} {run.members:>9,} members (saved suggestion)")
else:
    for suggestion in load_suggestion_runs(CONF, ctx.catalog):
        save = suggestion.spec.save
        if save is None:
            continue
        try:
            row = suggestion_row(ctx, suggestion.output, save.rank, save.direction)
        except RunFailure as exc:
            print(f"{suggestion.output}: nothing to save ({exc})")
            continue
        print(f"would save {suggestion.output} #{row['Rank']} as {save.name!r}: {row['Summary']}")

# COMMAND ----------

from lab.report import write_report

print("report:", write_report(ctx))
