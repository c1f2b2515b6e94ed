"""Errors with exit codes: bad input exits 2 with one line per problem, failures exit 1."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CohortlakeError", "InputError", "Problem", "RunFailure"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


@dataclass(frozen=True, order=True)
class Problem:
    """One validation problem: where it is (file and path inside it) and why."""

    file: str
    path: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        # One line whatever a file name or value holds: control characters as escapes.
        return _CONTROL.sub(lambda m: repr(m.group())[1:-1], f"{where}: {self.reason}")


class CohortlakeError(Exception):
    """Base of Cohortlake's errors; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class InputError(CohortlakeError):
    """Bad input (definition, config, CLI argument): nothing was read or written."""

    exit_code = 2

    def __init__(self, problems: list[Problem] | Problem | str, *, file: str = "", path: str = ""):
        if isinstance(problems, str):
            problems = [Problem(file, path, problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(dict.fromkeys(problems))  # each problem once
        super().__init__("\n".join(str(p) for p in self.problems))


class RunFailure(CohortlakeError):
    """A run failed after validation (data missing, Spark error, conflict)."""

    exit_code = 1
