"""``cohortlake`` command line: one entry point, a sub-command per job and tool.

Each library package contributes its sub-commands through ``<package>/cli.py``'s
``register(subparsers, common)``. Exit codes: 0 done, 2 bad input (one line per
problem, nothing written), 1 failure.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.metadata
import logging
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from cohortlake.context import Context, load_context, parse_as_of
from cohortlake.errors import CohortlakeError, InputError

__all__ = [
    "add_command",
    "add_common",
    "add_only",
    "command_modules",
    "context_from_args",
    "main",
    "run_command",
]

log = logging.getLogger("cohortlake")

# The sub-commands' modules, from the lab's down: the CLI is where the layers meet, so it
# names the packages above the runtime by module name only (imported when the CLI starts).
_COMMAND_MODULES = (
    "lab.cli",
    "cohortlake.commands",
    "cohortlake.data_cli",
    "cohortlake.importing",
    "segmentation.cli",
    "insights.cli",
    "insights.sketch_cli",
    "expansion.cli",
    "suggestions.cli",
)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser with no abbreviated flags, whose usage errors are one line and exit 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # `run --forc` must not start a forced run
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {_did_you_mean(message)}\n")


def _did_you_mean(message: str) -> str:
    """argparse's "invalid choice: 'rn' (choose from ...)" with the nearest choices named."""
    found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if not found:
        return message
    choices = re.findall(r"'?([\w-]+)'?", found.group(2))
    near = difflib.get_close_matches(found.group(1), choices, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(near)}?" if near else f"; one of {', '.join(choices)}"
    return f"{message[: found.start()]}unknown command '{found.group(1)}'{hint}"


def add_command(
    sub: argparse._SubParsersAction,
    name: str,
    summary: str,
    description: str,
    examples: Sequence[str],
) -> argparse.ArgumentParser:
    """A sub-command with a one-line summary, a description and examples in its --help."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.\n\n{description}",
        epilog=epilog,
    )
    return parser


class _OnlyAction(argparse.Action):
    """``--only A,B --only C`` and ``--only A B``: one flat list of names."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        items = [values] if isinstance(values, str) else list(values or [])
        names = list(getattr(namespace, self.dest, None) or [])
        for item in items:
            names += [v.strip() for v in str(item).split(",") if v.strip()]
        setattr(namespace, self.dest, names)


def add_only(parser: argparse.ArgumentParser, what: str) -> None:
    """The one ``--only`` form of every job: repeatable, comma-separated or space-separated."""
    parser.add_argument(
        "--only",
        action=_OnlyAction,
        nargs="+",
        default=None,
        metavar="OUTPUT",
        help=f"run only these {what} (output names; repeat the flag or separate with commas)",
    )


def add_common(parser: argparse.ArgumentParser) -> None:
    """The flags every job shares: --conf, --root, --master, --as-of, --tracking-uri, -v, -q."""
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
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="progress logs and Spark warnings (-vv: debug logs)",
    )
    g.add_argument("-q", "--quiet", action="store_true", help="errors only")


def context_from_args(args: argparse.Namespace, *, catalog: bool = True) -> Context:
    """Validate the common flags and the configuration (no Spark yet); ``catalog=False``
    for the commands that make the catalog or its tables."""
    parse_as_of(getattr(args, "as_of", None))
    return load_context(
        args.conf,
        root=args.root,
        master=args.master,
        tracking_uri=args.tracking_uri,
        catalog=catalog,
    )


def _version() -> str:
    try:
        return importlib.metadata.version("cohortlake")
    except importlib.metadata.PackageNotFoundError:  # run from a --py-files zip
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cohortlake",
        description="Customer segmentation for the lakehouse: Spark jobs over Delta Lake tables.",
        epilog="Run `cohortlake COMMAND --help` for a command's options and examples.\n"
        "Exit codes: 0 done, 2 bad input (one line per problem, nothing written), 1 failure.",
    )
    parser.add_argument("--version", action="version", version=f"cohortlake {_version()}")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=_Parser, title="commands"
    )
    for module in command_modules():
        module.register(sub)
    return parser


def command_modules() -> list[Any]:
    """The importable modules that contribute sub-commands (and definition checks)."""
    found = []
    for name in _COMMAND_MODULES:
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return found


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg, unused-ignore]
    """Writes to whatever ``sys.stderr`` is when a record comes (it may have been replaced)."""

    @property  # type: ignore[override, unused-ignore]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging(args: argparse.Namespace) -> None:
    verbose, quiet = int(getattr(args, "verbose", 0) or 0), getattr(args, "quiet", False)
    level = (
        logging.ERROR
        if quiet
        else logging.DEBUG
        if verbose > 1
        else logging.INFO
        if verbose
        else logging.WARNING
    )
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
    """Run a handler, mapping errors to exit codes and one-line messages.

    Bad input exits 2 with one line per problem; any other failure exits 1 with one line
    naming the command and the cause, and the traceback only with ``-v``.
    """
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
    except Exception as exc:  # the last guard: one line, not a traceback
        if getattr(args, "verbose", 0):
            traceback.print_exc()
        command = getattr(args, "command", None) or "cohortlake"
        hint = "" if getattr(args, "verbose", 0) else " (-v shows the traceback)"
        print(f"failed: {command}: {_cause(exc)}{hint}", file=sys.stderr)
        return 1


def _cause(exc: BaseException) -> str:
    """The first line of an exception's message (the Java cause's, for a Py4J or Spark error)."""
    text = str(exc).strip() or type(exc).__name__
    lines = [line.strip().removeprefix(": ") for line in text.splitlines() if line.strip()]
    java = next((line for line in lines if re.match(r"^[\w.$]+(Exception|Error): ", line)), None)
    first = java or f"{lines[0]} ({type(exc).__name__})"
    return first if len(first) <= 300 else first[:300] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the chosen sub-command, return its exit code."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    _setup_logging(args)
    handler: Any = args.handler
    return run_command(handler, args)


if __name__ == "__main__":
    sys.exit(main())
