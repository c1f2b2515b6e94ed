"""spark-submit entry point: `cohortlake demo` (the whole Contoso lab)."""

import sys

from cohortlake.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
