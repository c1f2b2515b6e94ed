"""``cohortlake`` command line: one entry point, a sub-command per job and tool.

Each library package contributes its sub-commands through ``<package>/cli.py``'s
``register(subparsers, common)``. Exit codes: 0 done, 2 bad input (one line per
problem, nothing written), 1 failure.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from cohortlake.context import Context, load_context, parse_as_of
from cohortlake.errors import CohortlakeError, InputError

__all__ = ["add_common", "context_from_args", "main", "run_command"]

log = logging.getLogger("cohortlake")

_COMMAND_MODULES = (
    "cohortlake.commands",
    "segmentation.cli",
    "insights.cli",
    "expansion.cli",
    "suggestions.cli",
    "cohortlake.demo",
)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message}\n")


def add_common(parser: argparse.ArgumentParser) -> None:
    """The flags every job shares: --conf, --root, --master, --as-of, --tracking-uri."""
    g = parser.add_argument_group("common options")
    g.add_argument("--conf", default="conf", help="configuration folder (default: conf)")
    g.add_argument(
        "--root", default=None, help="lakehouse root (default: from conf/lakehouse.yaml)"
    )
    g.add_argument(
        "--master", default=None, help="Spark master (default: local[*], or spark-submit's)"
    )
    g.add_argument(
        "--as-of",
        dest="as_of",
        default=None,
        help="fix 'now' for relative dates (ISO date or timestamp)",
    )
    g.add_argument("--tracking-uri", dest="tracking_uri", default=None, help="MLflow tracking URI")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    g.add_argument("-q", "--quiet", action="store_true", help="warnings only")


def context_from_args(args: argparse.Namespace) -> Context:
    """Validate the common flags and the configuration (no Spark yet)."""
    parse_as_of(getattr(args, "as_of", None))
    return load_context(
        args.conf, root=args.root, master=args.master, tracking_uri=args.tracking_uri
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cohortlake", description="Customer segmentation for the lakehouse.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg, unused-ignore]
    """Writes to whatever ``sys.stderr`` is when a record comes (it may have been replaced)."""

    @property  # type: ignore[override, unused-ignore]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging(args: argparse.Namespace) -> None:
    verbose, quiet = getattr(args, "verbose", False), getattr(args, "quiet", False)
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)  # only ours: closing other handlers (a test runner's) breaks them
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("py4j", "alembic", "urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_command(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a handler, mapping Cohortlake errors to exit codes and one-line messages."""
    try:
        return int(handler(args) or 0)
    except InputError as exc:
        for p in exc.problems:
            print(f"error: {p}", file=sys.stderr)
        return 2
    except CohortlakeError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the chosen sub-command, return its exit code."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    _setup_logging(args)
    handler: Any = args.handler
    return run_command(handler, args)


if __name__ == "__main__":
    sys.exit(main())
