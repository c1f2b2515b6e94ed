"""Cohortlake runtime: Spark session, Delta I/O, catalog, configuration and CLI."""

from __future__ import annotations

from cohortlake.catalog import Catalog, FieldRef, load_catalog
from cohortlake.context import Context, load_context, parse_as_of
from cohortlake.errors import CohortlakeError, InputError, Problem, RunFailure
from cohortlake.lake import Lake, SegmentRun, check_output_name, new_run_id
from cohortlake.naming import derive_output_name, registered_outputs

__all__ = [
    "Catalog",
    "CohortlakeError",
    "Context",
    "FieldRef",
    "InputError",
    "Lake",
    "Problem",
    "RunFailure",
    "SegmentRun",
    "check_output_name",
    "derive_output_name",
    "load_catalog",
    "load_context",
    "new_run_id",
    "parse_as_of",
    "registered_outputs",
]
