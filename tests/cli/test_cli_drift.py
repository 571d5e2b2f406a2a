"""``steward drift`` and ``steward profile``: tables, JSON, exit codes, reports, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.cli.conftest import Invoke


def _frame(seed: int, n: int = 2000, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": rng.normal(40 + shift * 10, 10, n),
        "income": rng.lognormal(3, 0.5, n),
        "plan": rng.choice(["free", "pro", "team"], n, p=[0.2, 0.3, 0.5] if shift else None),
        "kids": rng.integers(0, 4, n),
    })  # fmt: skip


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "ref": tmp_path / "ref.parquet",
        "same": tmp_path / "same.csv",
        "drifted": tmp_path / "drifted.parquet",
    }
    _frame(1).to_parquet(paths["ref"])
    _frame(2).to_csv(paths["same"], index=False)
    _frame(3, shift=1.0).to_parquet(paths["drifted"])
    return paths


def test_no_drift_exits_0_with_a_table(invoke: Invoke, files: dict[str, Path]) -> None:
    result = invoke("drift", str(files["ref"]), str(files["same"]))
    assert result.exit_code == 0, result.output
    for text in ("age", "wasserstein", "jensenshannon", "no dataset drift"):
        assert text in result.stdout


def test_dataset_drift_exits_3(invoke: Invoke, files: dict[str, Path]) -> None:
    result = invoke("drift", str(files["ref"]), str(files["drifted"]))
    assert result.exit_code == 3, result.output
    assert "dataset drift: 2 of 4 tested columns drifted" in result.stdout


def test_json_is_the_report(invoke: Invoke, files: dict[str, Path]) -> None:
    result = invoke("drift", str(files["ref"]), str(files["drifted"]), "--json")
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["dataset_drift"] is True
    assert report["n_drifted"] == 2
    by_name = {c["column"]: c for c in report["columns"]}
    assert set(by_name) == {"age", "income", "plan", "kids"}
    age = by_name["age"]
    assert (age["method"], age["threshold"], age["drifted"]) == ("wasserstein", 0.1, True)
    assert {"statistic", "p_value", "score", "kind", "n_reference", "n_current"} <= set(age)
    assert "histogram" not in age


def test_columns_thresholds_methods_and_share(invoke: Invoke, files: dict[str, Path]) -> None:
    ref, drifted = str(files["ref"]), str(files["drifted"])
    only = invoke("drift", ref, drifted, "--columns", "kids,income", "--json")
    assert only.exit_code == 0, only.output
    assert [c["column"] for c in json.loads(only.stdout)["columns"]] == ["kids", "income"]
    loose = invoke("drift", ref, drifted, "--threshold", "age=5", "--threshold", "plan=0.9",
                   "--json")  # fmt: skip
    assert loose.exit_code == 0, loose.output
    forced = invoke("drift", ref, drifted, "--method", "age=psi", "--kind", "kids=numerical",
                    "--drift-share", "0.25", "--json")  # fmt: skip
    assert forced.exit_code == 3
    columns = {c["column"]: c for c in json.loads(forced.stdout)["columns"]}
    assert columns["age"]["method"] == "psi"
    assert columns["kids"]["kind"] == "numerical"


def test_html_report(invoke: Invoke, files: dict[str, Path], tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = invoke("drift", str(files["ref"]), str(files["drifted"]), "--html", str(page))
    assert result.exit_code == 3
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html
    assert html.count("<svg") == 4  # one histogram per feature
    assert "dataset drift" in html
    assert "ref.parquet" in html
    assert f"Wrote the report to {page}" in result.stderr


def test_profile_then_drift_against_it(
    invoke: Invoke, files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "ref.profile.json"
    result = invoke("profile", str(files["ref"]), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "Profile of ref.parquet: 2,000 rows" in result.stdout
    assert json.loads(out.read_text())["format"] == "steward.profile/1"
    against = invoke("drift", str(out), str(files["drifted"]), "--json")
    assert against.exit_code == 3
    report = json.loads(against.stdout)
    assert report["reference_from_profile"] is True
    assert {c["column"] for c in report["columns"] if c["drifted"]} == {"age", "plan"}


def test_profile_json(invoke: Invoke, files: dict[str, Path]) -> None:
    result = invoke("profile", str(files["same"]), "--json", "--batch-rows", "300")
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    assert profile["rows"] == 2000
    plan = profile["columns"]["plan"]
    assert (plan["kind"], plan["count"], sum(plan["categories"][1])) == ("categorical", 2000, 2000)
    assert profile["columns"]["age"]["quantiles"]["0.5"] == pytest.approx(40, abs=2)


def _bad_inputs(tmp_path: Path, good: Path) -> list[tuple[list[str], str]]:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("age,income\n")
    pd.DataFrame({"other": [1.0, 2.0]}).to_csv(tmp_path / "other.csv", index=False)
    typed = _frame(4, n=50).assign(age=["x"] * 50)
    typed.to_csv(tmp_path / "typed.csv", index=False)
    (tmp_path / "bad.json").write_text('{"format": "nope"}')
    g = str(good)
    return [
        (["drift", g, str(tmp_path / "missing.csv")], "missing.csv"),
        (["drift", g, str(tmp_path / "notes.txt")], "'notes.txt': use a .parquet or .csv file"),
        (["drift", g, str(tmp_path / "broken.parquet")], "broken.parquet"),
        (["drift", g, str(tmp_path / "empty.csv")], "empty.csv"),
        (["drift", g, str(tmp_path / "header.csv")], "header.csv' has no rows"),
        (["drift", g, str(tmp_path / "other.csv")], "no column in common"),
        (["drift", g, str(tmp_path / "typed.csv")], "Column 'age' changed type"),
        (["drift", g, g, "--columns", "nope"], "Column 'nope' is not in the reference"),
        (["drift", str(tmp_path / "bad.json"), g], "Not a Steward profile"),
        (["drift", g, g, "--threshold", "age=high"], "must be a number"),
        (["drift", g, g, "--method", "age=magic"], "'magic' is not one of"),
        (["profile", str(tmp_path / "header.csv")], "has no rows: nothing to profile"),
        (["profile", str(tmp_path / "broken.parquet")], "broken.parquet"),
    ]


def test_bad_input_exits_2_naming_the_file_or_column(
    invoke: Invoke, files: dict[str, Path], tmp_path: Path
) -> None:
    for args, needle in _bad_inputs(tmp_path, files["ref"]):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        flat = " ".join(result.output.replace("│", " ").split())  # usage errors come boxed
        assert needle in flat, (args, result.output)
        assert "Traceback" not in result.output
        assert result.stdout == "" or "Usage" not in result.stdout


def test_help_and_the_cheap_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys, steward.cli.drift, steward.cli.main; "
        "print([m for m in ('numpy', 'scipy', 'pyarrow', 'pandas', 'datasketches') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
