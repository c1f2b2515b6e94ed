"""``python -m benchmarks``: see :mod:`benchmarks._harness`."""

from __future__ import annotations

import sys

from benchmarks._harness import main

sys.exit(main())
