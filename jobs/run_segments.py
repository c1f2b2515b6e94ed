"""spark-submit entry point: run segment definitions (``cohortlake run``)."""

import sys

from cohortlake.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
