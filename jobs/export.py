"""spark-submit entry point: `cohortlake export`."""

import sys

from cohortlake.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
