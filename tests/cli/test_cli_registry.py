"""models, versions, show, register, alias and card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.cli.conftest import Invoke


def test_models_table_and_json(invoke: Invoke, registry: Path) -> None:
    result = invoke("models")
    assert result.exit_code == 0, result.output
    assert "churn" in result.stdout
    assert "fraud" in result.stdout
    data = json.loads(invoke("models", "--json").stdout)
    churn = next(m for m in data if m["name"] == "churn")
    assert churn["aliases"] == {"champion": 1, "challenger": 2}
    assert churn["latest_version"] == 2


def test_models_filter_and_limit(invoke: Invoke, registry: Path) -> None:
    data = json.loads(invoke("models", "--filter", "tier = 1", "--json").stdout)
    assert [m["name"] for m in data] == ["fraud"]
    limited = invoke("models", "--limit", "1")
    assert limited.exit_code == 0
    assert "raise --limit" in limited.stderr


def test_models_bad_filter_exits_2(invoke: Invoke, registry: Path) -> None:
    result = invoke("models", "--filter", "tier >>> 1")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: Cannot read the condition")
    assert "Traceback" not in result.output


def test_versions_of_a_model(invoke: Invoke, registry: Path) -> None:
    result = invoke("versions", "churn")
    assert result.exit_code == 0, result.output
    assert "champion" in result.stdout
    data = json.loads(invoke("versions", "churn", "--json").stdout)
    assert sorted(v["version"] for v in data) == [1, 2]


def test_versions_search_across_models_by_metric(invoke: Invoke, registry: Path) -> None:
    result = invoke("versions", "--all", "--filter", "metrics.auc > 0.9", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(v["model_name"], v["version"]) for v in data] == [("churn", 1)]


def test_versions_needs_a_name_or_all(invoke: Invoke, registry: Path) -> None:
    assert invoke("versions").exit_code == 2
    both = invoke("versions", "churn", "--all")
    assert both.exit_code == 2
    assert "not both" in both.stderr


def test_versions_of_unknown_model_exits_4(invoke: Invoke, registry: Path) -> None:
    result = invoke("versions", "nope")
    assert result.exit_code == 4, result.output
    assert result.stderr.startswith("error: ")


def test_show_version(invoke: Invoke, registry: Path) -> None:
    result = invoke("show", "models:/churn@champion")
    assert result.exit_code == 0, result.output
    for text in ("models:/churn/1", "Lineage", "Metrics", "auc", "Signature", "age", "Files"):
        assert text in result.stdout, text
    data = json.loads(invoke("show", "models:/churn/1", "--json").stdout)
    assert data["metrics"]["auc"] == pytest.approx(0.91)
    assert data["aliases"] == ["champion"]
    assert data["lineage"]["training_data"].startswith("sha256:")


def test_show_unknown_version_exits_4(invoke: Invoke, registry: Path) -> None:
    result = invoke("show", "models:/churn/9")
    assert result.exit_code == 4
    assert len(result.stderr.strip().splitlines()) == 1


def test_show_bad_uri_exits_2(invoke: Invoke, registry: Path) -> None:
    result = invoke("show", "churn-1")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ")


# register -----------------------------------------------------------------------------------
@pytest.fixture
def model_file(tmp_path: Path) -> tuple[Path, Path]:
    import pandas as pd
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    x = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    path = tmp_path / "model.skops"
    sio.dump(LogisticRegression().fit(x, [0, 0, 1, 1]), path)
    data = tmp_path / "train.csv"
    x.to_csv(data, index=False)
    return path, data


def test_register_a_file_with_metadata(invoke: Invoke, model_file: tuple[Path, Path]) -> None:
    path, data = model_file
    result = invoke(
        "register", str(path), "--name", "scorer", "--metric", "auc=0.93", "--param", "C=1",
        "--tag", "stage=dev", "--training-data", str(data), "--owner", "ana", "--team", "risk",
        "--tier", "1", "--use-case", "scoring", "--description", "first", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    version = json.loads(result.stdout)
    assert version["version"] == 1
    assert version["metrics"] == {"auc": 0.93}
    assert version["params"] == {"C": "1"}
    assert version["tags"] == {"stage": "dev"}
    assert [c["name"] for c in version["signature"]["inputs"]] == ["a", "b"]
    model = json.loads(invoke("models", "--json").stdout)[0]
    assert (model["owner"], model["team"], model["risk_tier"]) == ("ana", "risk", 1)
    again = invoke("register", str(path), "--name", "scorer")
    assert again.exit_code == 0
    assert "models:/scorer/2" in again.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "auc"], "KEY=VALUE"),
        (["--metric", "auc=high"], "must be a number"),
        (["--flavor", "tensorflow"], "tensorflow"),
        (["--tier", "7"], "--tier"),
    ],
)
def test_register_bad_options_exit_2(
    invoke: Invoke, model_file: tuple[Path, Path], args: list[str], message: str
) -> None:
    result = invoke("register", str(model_file[0]), "--name", "scorer", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_register_missing_file_exits_2(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("register", str(tmp_path / "none.onnx"), "--name", "scorer")
    assert result.exit_code == 2


def test_register_a_file_that_is_not_a_model_exits_2(invoke: Invoke, tmp_path: Path) -> None:
    junk = tmp_path / "model.onnx"
    junk.write_bytes(b"not onnx")
    result = invoke("register", str(junk), "--name", "scorer")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_register_training_data_must_be_a_table(
    invoke: Invoke, model_file: tuple[Path, Path], tmp_path: Path
) -> None:
    other = tmp_path / "train.txt"
    other.write_text("a,b\n")
    result = invoke("register", str(model_file[0]), "--name", "s", "--training-data", str(other))
    assert result.exit_code == 2
    assert ".parquet or .csv" in result.stderr


# aliases ------------------------------------------------------------------------------------
def test_alias_set_and_delete(invoke: Invoke, registry: Path) -> None:
    moved = invoke("alias", "set", "churn", "champion", "2")
    assert moved.exit_code == 0, moved.output
    assert "churn@champion → version 2" in moved.stdout
    assert json.loads(invoke("show", "models:/churn@champion", "--json").stdout)["version"] == 2
    deleted = invoke("alias", "delete", "churn", "champion")
    assert deleted.exit_code == 0, deleted.output
    gone = invoke("show", "models:/churn@champion")
    assert gone.exit_code == 4
    assert "steward alias set" in gone.stderr


def test_alias_errors(invoke: Invoke, registry: Path) -> None:
    assert invoke("alias", "set", "churn", "champion", "9").exit_code == 4
    assert invoke("alias", "set", "nope", "champion", "1").exit_code == 4
    assert invoke("alias", "set", "churn", "Bad Alias!", "1").exit_code == 2
    assert invoke("alias", "set", "churn", "champion", "zero").exit_code == 2
    assert invoke("alias", "delete", "churn", "nothing").exit_code == 4


# cards --------------------------------------------------------------------------------------
def test_card_prints_markdown_and_writes_a_file(
    invoke: Invoke, registry: Path, tmp_path: Path
) -> None:
    result = invoke("card", "models:/churn/1")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Model card: churn v1")
    assert invoke("card", "show", "models:/churn@champion").stdout.startswith("# Model card")
    out = tmp_path / "card.md"
    written = invoke("card", "models:/churn/1", "--output", str(out))
    assert written.exit_code == 0
    assert out.read_text().startswith("# Model card: churn v1")


def test_card_edit_with_text_and_file(invoke: Invoke, registry: Path, tmp_path: Path) -> None:
    edited = invoke("card", "edit", "churn", "--section", "intended_use", "--text", "Retention.")
    assert edited.exit_code == 0, edited.output
    section = tmp_path / "limits.md"
    section.write_text("Only EU customers.")
    from_file = invoke("card", "edit", "churn", "--section", "limitations", "--file", str(section))
    assert from_file.exit_code == 0, from_file.output
    card = invoke("card", "models:/churn/1").stdout
    assert "Retention." in card
    assert "Only EU customers." in card


def test_card_errors(invoke: Invoke, registry: Path) -> None:
    assert invoke("card", "models:/nope/1").exit_code == 4
    unknown = invoke("card", "edit", "churn", "--section", "vibes", "--text", "x")
    assert unknown.exit_code == 2
    assert "intended_use" in unknown.stderr
    assert invoke("card", "edit", "churn", "--section", "limitations").exit_code == 2
    assert invoke("card", "edit", "nope", "--section", "limitations", "--text", "x").exit_code == 4


def test_models_create_and_duplicate_exits_5(invoke: Invoke) -> None:
    created = invoke("models", "create", "churn", "--owner", "ana", "--tier", "2", "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["risk_tier"] == 2
    duplicate = invoke("models", "create", "churn")
    assert duplicate.exit_code == 5
    assert duplicate.stderr.startswith("error: ")
    assert len(duplicate.stderr.strip().splitlines()) == 1
    assert invoke("models", "create", "bad name!").exit_code == 2
