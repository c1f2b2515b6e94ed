"""The notebook as Jupyter runs it: cell by cell, without ``__file__``, from ``notebooks/``.

Each ``# COMMAND ----------`` cell is executed in one fresh namespace (no ``__file__``,
no ``dbutils``), the working folder is ``notebooks/``, and the parameters come from
``COHORTLAKE_*`` environment variables, as in a Jupyter kernel. A first run generates
a small lakehouse; a second one, without GENERATE, must leave every file of the
configuration as it was and find the same segments, checked against pandas.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from _memberships import rs_members
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from cohortlake.catalog import Catalog

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "contoso_lab.py"
SEPARATOR = "\n# COMMAND ----------\n"
PARAMETERS = ("ROOT", "CONF", "AS_OF", "GENERATE", "CUSTOMERS", "WRITE_DEFINITIONS")
CUSTOMERS = 500
SAVED_SUGGESTION = "low_spending_teachers.yaml"
QUICK_CREATED = ("customers_from_california.yaml", "high_value_online_customers.yaml")


def _cells() -> list[str]:
    cells = NOTEBOOK.read_text().split(SEPARATOR)
    assert len(cells) > 10, "the notebook lost its cell separators"
    return cells


def _parameters_cell() -> str:
    (cell,) = [c for c in _cells() if "def _find_conf" in c]
    return cell


def _through(cells: list[str], marker: str) -> list[str]:
    """The cells up to and including the first one that holds ``marker``."""
    last = next(i for i, c in enumerate(cells) if marker in c)
    return cells[: last + 1]


def _execute(cells: list[str]) -> dict[str, Any]:
    """Run the cells one after the other in one namespace, as a kernel does."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for i, cell in enumerate(cells):
        exec(compile(cell, f"<{NOTEBOOK.name} cell {i}>", "exec"), namespace)
    return namespace


def _clear_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PARAMETERS:
        monkeypatch.delenv(f"COHORTLAKE_{name}", raising=False)


def _condition(where: dict[str, Any], catalog: Catalog) -> tuple[str, str, Any]:
    """A one-condition ``where`` with the attribute's display name resolved."""
    ref = catalog.resolve(where["attribute"])
    assert ref is not None
    return ref.name, where["op"], where.get("value")


def _tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(folder)).encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def test_parameters_find_the_repository_conf_from_the_notebooks_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clear_parameters(monkeypatch)
    monkeypatch.chdir(REPO / "notebooks")
    ns = _execute([_parameters_cell()])
    assert ns["CONF"] == REPO / "conf"
    assert ns["ROOT"] == str(REPO / "lakehouse")  # conf's relative root, beside conf/
    assert (ns["GENERATE"], ns["WRITE_DEFINITIONS"], ns["CUSTOMERS"]) == (False, False, 5000)


def test_parameters_fail_in_one_line_without_a_conf(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clear_parameters(monkeypatch)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as failed:
        _execute([_parameters_cell()])
    message = str(failed.value)
    assert message.startswith("configuration folder not found") and "\n" not in message
    assert str(tmp_path / "conf") in message


@pytest.mark.slow
def test_notebook_runs_again_without_generate_and_writes_no_definition(
    spark: SparkSession,
    catalog: Catalog,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The conf without the suggestion the lab saves, so that a save would add a file, and
    # with smaller suggestions allowed, so that one is significant at this size.
    conf, root = tmp_path / "conf", tmp_path / "lake"
    shutil.copytree(REPO / "conf", conf)
    (conf / "segments" / SAVED_SUGGESTION).unlink()
    lifetime = conf / "suggestions" / "lifetime_spend.yaml"
    lifetime.write_text(lifetime.read_text().replace("min_members: 100", "min_members: 25"))
    before = _tree_hash(conf)
    _clear_parameters(monkeypatch)
    monkeypatch.chdir(REPO / "notebooks")
    monkeypatch.setenv("COHORTLAKE_ROOT", str(root))
    monkeypatch.setenv("COHORTLAKE_CONF", str(conf))
    monkeypatch.setenv("COHORTLAKE_CUSTOMERS", str(CUSTOMERS))
    cells = _cells()

    # A first-time user over a new lakehouse: generate, then the cells up to the segments.
    monkeypatch.setenv("COHORTLAKE_GENERATE", "true")
    first = _execute(_through(cells, "run_segments("))
    assert _tree_hash(conf) == before
    profile = DeltaTable(str(root / "profile" / "Customer"))
    generated = profile.version()
    sizes = {r.segment: r.members for r in first["segment_runs"]}

    # The whole notebook again, as scheduled over the data that is there.
    monkeypatch.setenv("COHORTLAKE_GENERATE", "false")
    capsys.readouterr()
    second = _execute(cells)
    printed = capsys.readouterr().out
    assert _tree_hash(conf) == before
    assert "would save LifetimeSpendSuggestions" in printed  # a save had a suggestion
    assert DeltaTable(str(root / "profile" / "Customer")).version() == generated
    assert {r.segment: r.members for r in second["segment_runs"]} == sizes

    customers = profile.to_pandas(columns=["CustomerId", "State"])
    assert len(customers) == CUSTOMERS
    californians = set(customers.loc[customers["State"] == "California", "CustomerId"])
    members = rs_members(root, "CustomersFromCalifornia")
    assert set(members["CustomerId"]) == californians
    assert sizes["CustomersFromCalifornia"] == len(californians) > 0

    # Quick create into a conf without its two definitions: a preview, written only when asked.
    for name in QUICK_CREATED:
        (conf / "segments" / name).unlink()
    without = _tree_hash(conf)
    quick = [c for c in _through(cells, "quick_create(") if "generate_contoso(" not in c]
    _execute(quick)
    assert _tree_hash(conf) == without
    monkeypatch.setenv("COHORTLAKE_WRITE_DEFINITIONS", "true")
    _execute(quick)
    for name in QUICK_CREATED:
        written = yaml.safe_load((conf / "segments" / name).read_text())
        shipped = yaml.safe_load((REPO / "conf" / "segments" / name).read_text())
        assert written["name"] == shipped["name"]
        assert _condition(written["where"], catalog) == _condition(shipped["where"], catalog)
