"""MLflow set-up shared by every tracked job: SQLite under the lakehouse root by default."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["tracked_run"]

log = logging.getLogger(__name__)


def _experiment_id(name: str, artifact_root: str) -> str:
    import mlflow

    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    return str(mlflow.create_experiment(name, artifact_location=artifact_root))


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@contextlib.contextmanager
def tracked_run(
    tracking_uri: str, root: str, experiment: str, run_name: str, tags: dict[str, str] | None = None
) -> Iterator[object]:
    """Start an MLflow run in ``experiment`` (artifacts under ``<root>/mlartifacts/<experiment>``).

    ``tracking_uri`` is usually ``Context.tracking_uri()``: ``sqlite:///<root>/mlflow.db``
    unless ``--tracking-uri`` / ``MLFLOW_TRACKING_URI`` point at a server.
    """
    import mlflow

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # set_tracking_uri also exports MLFLOW_TRACKING_URI, which load_lakehouse_config reads:
    # left set, every later context in this process would track into this lakehouse.
    exported = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    _restore_env("MLFLOW_TRACKING_URI", exported)
    local_root = "://" not in root
    artifact_root = (
        (Path(root) / "mlartifacts" / experiment).resolve().as_uri()
        if local_root
        else f"{root}/mlartifacts/{experiment}"
    )
    exp_id = _experiment_id(experiment, artifact_root)
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=tags or {}) as run:
        log.info("mlflow run %s in experiment %s (%s)", run.info.run_id, experiment, tracking_uri)
        yield run
