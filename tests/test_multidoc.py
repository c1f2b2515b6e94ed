"""Definition files of several ``---`` documents, and suggestions' default influencers (#31).

No Spark: every check is of validation, against hand-written expectations.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cohortlake.catalog import Catalog, load_catalog
from cohortlake.config import load_document, load_lakehouse_config
from cohortlake.errors import InputError
from cohortlake.naming import registered_outputs
from expansion.model import load_expansions
from insights.model import load_insights
from segmentation.validate import load_definitions
from suggestions.model import SuggestionRun, load_suggestion_runs

REPO = Path(__file__).resolve().parent.parent

_TEXANS = "name: Texans\nwhere: {attribute: State, op: eq, value: Texas}\n"
_FLORIDIANS = "name: Floridians\nwhere: {attribute: State, op: eq, value: Florida}\n"


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    out = tmp_path / "conf"
    shutil.copytree(REPO / "conf", out)
    return out


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(REPO / "conf" / "catalog.yaml")


def _problems(call: object) -> list[str]:
    assert callable(call)
    with pytest.raises(InputError) as info:
        call()
    return [f"{Path(p.file).name}: {p.path}: {p.reason}" for p in info.value.problems]


def test_a_segments_file_of_two_documents_loads_both(conf: Path, catalog: Catalog) -> None:
    (conf / "segments" / "states.yaml").write_text(f"{_TEXANS}---\n{_FLORIDIANS}")
    shipped = {p.stem for p in (REPO / "conf" / "segments").glob("*.yaml")}
    defs = load_definitions(conf, catalog)
    mine = {d.name: (d.output, d.path) for d in defs if Path(d.file).name == "states.yaml"}
    assert mine == {"Texans": ("Texans", "[0]"), "Floridians": ("Floridians", "[1]")}
    assert len(defs) == len(shipped) + 2


def test_a_problem_in_the_second_document_names_it(conf: Path, catalog: Catalog) -> None:
    bad = "name: Floridians\nwhere:\n  all:\n    - {attribute: Stat, op: eq, value: Florida}\n"
    (conf / "segments" / "states.yaml").write_text(f"{_TEXANS}---\n{bad}")
    assert _problems(lambda: load_definitions(conf, catalog)) == [
        "states.yaml: [1].where.all[0].attribute: unknown attribute 'Stat'; did you mean State?"
    ]


def test_a_document_may_be_a_list(conf: Path, catalog: Catalog) -> None:
    listed = "segments:\n  - " + _FLORIDIANS.replace("\n", "\n    ", 1) + "  - {name: X}\n"
    (conf / "segments" / "states.yaml").write_text(f"{_TEXANS}---\n{listed}")
    assert _problems(lambda: load_definitions(conf, catalog)) == [
        "states.yaml: [1].segments[1].where: required key is missing"
    ]


def test_outputs_clashing_across_documents_are_reported(conf: Path, catalog: Catalog) -> None:
    (conf / "segments" / "states.yaml").write_text(f"{_TEXANS}---\n{_FLORIDIANS}---\n{_TEXANS}")
    file = conf / "segments" / "states.yaml"
    assert _problems(lambda: load_definitions(conf, catalog)) == [
        f"states.yaml: [2].name: output name 'Texans' is already used in {file}"
    ]
    assert _problems(lambda: registered_outputs(conf)) == [
        f"states.yaml: [2].output: output name 'Texans' is already used by segments in {file} at [0]"
    ]


def test_an_insight_clashing_with_another_document_is_reported(
    conf: Path, catalog: Catalog
) -> None:
    shipped = conf / "insights" / "high_value_online_overlap_california.yaml"
    text = shipped.read_text()
    shipped.write_text(f"{text}---\n{text}")
    assert _problems(lambda: load_insights(conf, catalog)) == [
        f"{shipped.name}: [1].output: output name 'HighValueOnlineOverlappedwithCaliforniaCustomers'"
        f" is already used by insights in {shipped} at [0]"
    ]


def test_empty_documents_are_skipped(conf: Path, catalog: Catalog) -> None:
    # a leading ---, an empty document between two and a trailing ---: two definitions
    (conf / "segments" / "states.yaml").write_text(f"---\n{_TEXANS}---\n---\n{_FLORIDIANS}---\n")
    paths = {
        d.name: d.path for d in load_definitions(conf, catalog) if d.file.endswith("states.yaml")
    }
    assert paths == {"Texans": "[0]", "Floridians": "[2]"}
    # one definition and a trailing ---: a one-definition file, with paths as before
    (conf / "segments" / "states.yaml").write_text(f"{_TEXANS}---\n".replace("State", "Stat"))
    assert _problems(lambda: load_definitions(conf, catalog)) == [
        "states.yaml: where.attribute: unknown attribute 'Stat'; did you mean State?"
    ]


def test_the_loader_limits_hold_in_every_document(conf: Path, catalog: Catalog) -> None:
    dup = "name: A\nname: B\nwhere: {attribute: State, op: eq, value: X}\n"
    (conf / "segments" / "states.yaml").write_text(f"{_TEXANS}---\n{dup}")
    assert _problems(lambda: load_definitions(conf, catalog)) == [
        "states.yaml: : invalid YAML at line 5: duplicate key 'name'"
    ]
    alias = "name: A\nwhere: *w\n"
    (conf / "segments" / "states.yaml").write_text(f"{_TEXANS}---\n{alias}")
    assert _problems(lambda: load_definitions(conf, catalog)) == [
        "states.yaml: : invalid YAML at line 5: aliases (*w) are not supported; write the value out"
    ]


def test_expansions_and_suggestions_take_documents_too(conf: Path, catalog: Catalog) -> None:
    exp = conf / "expansions" / "summer_promo_expansion.yaml"
    exp.write_text(exp.read_text() + "---\nname: Second\nsource: SummerPromotion\nfields: [Nope]\n")
    assert _problems(lambda: load_expansions(conf, catalog)) == [
        f"{exp.name}: [1].fields[0]: unknown field 'Nope'"
    ]
    sug = conf / "suggestions" / "lifetime_spend.yaml"
    sug.write_text(sug.read_text() + "---\nname: Points\ntarget: RewardPoints\nmax_depth: 0\n")
    assert _problems(lambda: load_suggestion_runs(conf, catalog)) == [
        f"{sug.name}: [1].max_depth: Input should be greater than or equal to 1"
    ]


def test_catalog_and_lakehouse_hold_one_document(conf: Path) -> None:
    cat = conf / "catalog.yaml"
    lines = cat.read_text().count("\n")
    cat.write_text(cat.read_text() + "---\nprofile: {attributes: {}}\n")
    assert _problems(lambda: load_catalog(cat)) == [
        f"catalog.yaml: : a second document starts at line {lines + 1} (after ---); "
        "this file holds one document"
    ]
    lake = conf / "lakehouse.yaml"
    lake.write_text("root: elsewhere\n---\nroot: x\n")
    assert _problems(lambda: load_lakehouse_config(lake)) == [
        "lakehouse.yaml: : a second document starts at line 2 (after ---); "
        "this file holds one document"
    ]
    lake.write_text("root: elsewhere\n---\n")  # a trailing --- is an empty document
    assert load_lakehouse_config(lake).root == "elsewhere"
    assert load_document(lake) == {"root": "elsewhere"}


def _suggestion(conf: Path, text: str, catalog: Catalog) -> list[str]:
    return [f.name for f in _run(conf, text, catalog).influencers]


def _run(conf: Path, text: str, catalog: Catalog) -> SuggestionRun:
    for old in (conf / "suggestions").iterdir():
        old.unlink()
    (conf / "suggestions" / "s.yaml").write_text(text)
    return load_suggestion_runs(conf, catalog)[0]


def test_influencers_default_to_the_usable_catalog_fields(
    conf: Path, catalog: Catalog, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="suggestions.model")
    # From conf/catalog.yaml by hand: no FirstName, LastName, Email, DateOfBirth (personal),
    # no activity columns, not the target.
    assert _suggestion(conf, "name: S\ntarget: LifetimeSpend\n", catalog) == [
        "State", "PostCode", "Income", "LoyaltyTier", "Occupation", "EmailSubscriber",
        "RewardPoints", "CustomerSatisfaction", "AverageWebPurchase", "AverageStorePurchase",
    ]  # fmt: skip
    assert _suggestion(conf, "name: S\ntarget: Customer Satisfaction\n", catalog) == [
        "State", "PostCode", "Income", "LoyaltyTier", "Occupation", "EmailSubscriber",
        "RewardPoints", "AverageWebPurchase", "AverageStorePurchase", "LifetimeSpend",
    ]  # fmt: skip
    assert "S: influencers not listed; using State, PostCode, Income," in caplog.text


def test_a_default_influencer_is_reported_at_the_key_to_write(conf: Path, catalog: Catalog) -> None:
    # a data check (too many categories) names influencers[i]; the file has no such item
    run = _run(conf, "name: S\ntarget: LifetimeSpend\n---\nname: T\ntarget: Income\n", catalog)
    assert (run.where("influencers[1]"), run.where("target")) == ("[0].influencers", "[0].target")
    listed = _run(conf, "name: S\ntarget: LifetimeSpend\ninfluencers: [State, Income]\n", catalog)
    assert listed.where("influencers[1]") == "influencers[1]"
    assert [f.name for f in listed.without({"State"}).influencers] == ["Income"]


def test_default_influencers_leave_out_dates_personal_fields_and_the_key(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "suggestions").mkdir(parents=True)
    (conf / "catalog.yaml").write_text(
        "profile:\n  key: Id\n  attributes:\n"
        "    Id: {type: string}\n    Email: {type: string, personal: true}\n"
        "    Points: {type: integer, personal: true}\n    Born: {type: date}\n"
        "    Tier: {type: string}\n    Spend: {type: number}\n    Member: {type: boolean}\n"
        "activities:\n  Visits:\n    event_time: At\n"
        "    attributes: {At: {type: timestamp}, Page: {type: string}}\n"
        "measures:\n  LastVisit: {source: Visits, agg: max, attribute: At}\n"
        "  VisitCount: {source: Visits, agg: count}\n"
    )
    catalog = load_catalog(conf / "catalog.yaml")
    assert _suggestion(conf, "name: S\ntarget: Spend\n", catalog) == [
        "Tier",
        "Member",
        "VisitCount",
    ]


def test_an_empty_influencers_list_is_still_an_error(conf: Path, catalog: Catalog) -> None:
    (conf / "suggestions" / "lifetime_spend.yaml").write_text(
        "name: S\ntarget: LifetimeSpend\ninfluencers: []\n---\n"
        "name: T\ntarget: LifetimeSpend\ninfluencers:\n"
    )
    assert _problems(lambda: load_suggestion_runs(conf, catalog)) == [
        "lifetime_spend.yaml: [0].influencers: List should have at least 1 item after validation, not 0",
        "lifetime_spend.yaml: [1].influencers: expected a list of attributes, got null; "
        "leave the key out for the default",
    ]


def test_validate_accepts_a_file_of_several_documents(conf: Path) -> None:
    (conf / "segments" / "states.yaml").write_text(f"{_TEXANS}---\n{_FLORIDIANS}---\n")
    sug = conf / "suggestions" / "lifetime_spend.yaml"
    sug.write_text(sug.read_text() + "---\nname: Points suggestions\ntarget: RewardPoints\n")
    done = subprocess.run(
        [sys.executable, "-m", "cohortlake.cli", "validate", "--conf", str(conf)],
        cwd=conf.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "segments: 6 valid" in done.stdout, done.stdout
    assert "PointsSuggestions" in done.stdout, done.stdout
