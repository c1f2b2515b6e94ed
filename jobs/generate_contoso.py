"""spark-submit entry point: `cohortlake generate`."""

import sys

from cohortlake.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
