"""Suggested segments: subgroups mined with Spark ML's decision tree, tested, ranked and tracked.

``run_suggestions`` mines every definition of ``conf/suggestions`` into
``<root>/suggestions/<Output>`` (one MLflow run each); ``save_suggestion`` writes a
chosen suggestion as a dynamic segment definition whose members equal the suggestion's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cohortlake.lazy import lazy_exports

if TYPE_CHECKING:
    from suggestions.model import (
        SaveSpec,
        SuggestionRun,
        SuggestionSpec,
        load_suggestion_runs,
        validate_suggestion,
    )
    from suggestions.run import SUGGESTIONS_SCHEMA, SuggestionResult, run_suggestions
    from suggestions.save import (
        save_configured_suggestions,
        save_suggestion,
        suggestion_members,
        suggestion_row,
    )

__all__ = [
    "SUGGESTIONS_SCHEMA",
    "SaveSpec",
    "SuggestionResult",
    "SuggestionRun",
    "SuggestionSpec",
    "load_suggestion_runs",
    "run_suggestions",
    "save_configured_suggestions",
    "save_suggestion",
    "suggestion_members",
    "suggestion_row",
    "validate_suggestion",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SaveSpec": "suggestions.model",
        "SuggestionRun": "suggestions.model",
        "SuggestionSpec": "suggestions.model",
        "load_suggestion_runs": "suggestions.model",
        "validate_suggestion": "suggestions.model",
        "SUGGESTIONS_SCHEMA": "suggestions.run",
        "SuggestionResult": "suggestions.run",
        "run_suggestions": "suggestions.run",
        "save_configured_suggestions": "suggestions.save",
        "save_suggestion": "suggestions.save",
        "suggestion_members": "suggestions.save",
        "suggestion_row": "suggestions.save",
    },
)
