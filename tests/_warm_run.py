"""A ``cohortlake run`` whose JVM is up and warm before it is told to go (a test helper).

``python tests/_warm_run.py CONF ROOT SCRATCH`` builds the Spark session from CONF's
``lakehouse.yaml``, warms it on a throwaway Delta table under SCRATCH (never under
ROOT), writes ``READY`` to stderr, then reads one line of arguments from stdin and runs
``cohortlake run --conf CONF --root ROOT <arguments>`` in this process.

Starting a JVM and its first Delta queries is most of a small run's time. The SIGKILL
harness starts the next run's process while the current one runs (on the other core),
so kill moments fall within the run itself and the series takes half the time; two
spares told to go together race more tightly than two cold starts.
"""

from __future__ import annotations

import shlex
import sys


def _warm(spark: object, folder: str) -> None:
    """A Delta create, read, join, aggregate and overwrite: the classes a segment run loads."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    assert isinstance(spark, SparkSession)
    spark.range(64).select(
        F.col("id").cast("string").alias("k"), (F.col("id") % 3).alias("g")
    ).write.format("delta").save(folder)
    table = spark.read.format("delta").load(folder)
    counts = table.groupBy("g").agg(F.count(F.lit(1)).alias("n"))
    joined = table.join(counts, "g").select("k", (F.col("g") + F.col("n")).alias("g"))
    joined.write.format("delta").mode("overwrite").save(folder)
    spark.read.format("delta").load(folder).count()


def main() -> int:
    conf, root, scratch = sys.argv[1:4]
    from cohortlake.cli import main as cli
    from cohortlake.context import load_context

    _warm(load_context(conf, root=root).spark, f"{scratch}/warm")
    print("READY", file=sys.stderr, flush=True)
    arguments = shlex.split(sys.stdin.readline())
    return cli(["run", "--conf", conf, "--root", root, "-v", *arguments])  # -v: progress logs


if __name__ == "__main__":
    sys.exit(main())
