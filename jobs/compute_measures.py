"""spark-submit entry point: `cohortlake measures`."""

import sys

from cohortlake.cli import main

if __name__ == "__main__":
    sys.exit(main(["measures", *sys.argv[1:]]))
