"""spark-submit entry point: `cohortlake quick-create`."""

import sys

from cohortlake.cli import main

if __name__ == "__main__":
    sys.exit(main(["quick-create", *sys.argv[1:]]))
