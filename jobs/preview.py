"""spark-submit entry point: `cohortlake preview`."""

import sys

from cohortlake.cli import main

if __name__ == "__main__":
    sys.exit(main(["preview", *sys.argv[1:]]))
