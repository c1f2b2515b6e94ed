"""spark-submit entry point: ``spark-submit jobs/suggest.py --conf conf [--only OUTPUT ...]``."""

from __future__ import annotations

import sys

from cohortlake.cli import main

if __name__ == "__main__":
    sys.exit(main(["suggest", *sys.argv[1:]]))
