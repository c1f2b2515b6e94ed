"""The Contoso Coffee lab: its data generator, the demo end to end, and its report.

It sits above the four feature packages and may import any of them; nothing below it
imports the lab. Its names load on first use, so the CLI starts without matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cohortlake.lazy import lazy_exports

if TYPE_CHECKING:
    from lab.contoso import generate_contoso
    from lab.demo import DemoResult, run_demo
    from lab.report import write_report

__all__ = ["DemoResult", "generate_contoso", "run_demo", "write_report"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "generate_contoso": "lab.contoso",
        "DemoResult": "lab.demo",
        "run_demo": "lab.demo",
        "write_report": "lab.report",
    },
)
