"""spark-submit entry point: `cohortlake insights` (overlap and differentiators)."""

import sys

from cohortlake.cli import main

if __name__ == "__main__":
    sys.exit(main(["insights", *sys.argv[1:]]))
