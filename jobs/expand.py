"""spark-submit entry point: `cohortlake expand` (look-alike expansion)."""

import sys

from cohortlake.cli import main

if __name__ == "__main__":
    sys.exit(main(["expand", *sys.argv[1:]]))
