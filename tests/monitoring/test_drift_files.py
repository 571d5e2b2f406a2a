"""Drift and profiles on files and frames: streamed Parquet/CSV equals in-memory, and every
unreadable input names the file or the column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steward.errors import InvalidInput
from steward.monitoring.drift import build_profile, compare, read_profile
from steward.stats.profile import profile_arrays


def _frame(seed: int, n: int = 5000, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    x[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "x": x,
        "k": rng.integers(0, 5, n),
        "big": rng.integers(0, 10_000, n),
        "plan": rng.choice(["free", "pro", "team"], n, p=[0.5, 0.3, 0.2] if shift else None),
        "flag": rng.random(n) < 0.5,
        "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
    })  # fmt: skip


def _exact(profile_dict: dict) -> dict:
    out = {}
    for name, column in profile_dict["columns"].items():
        skip = {"sketch", "quantiles", "mean", "std", "rank_error", "distinct_floor"}
        out[name] = {k: v for k, v in column.items() if k not in skip}
    return out


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_streamed_profile_equals_the_in_memory_one(tmp_path: Path, suffix: str) -> None:
    frame = _frame(1)
    path = tmp_path / f"data{suffix}"
    if suffix == ".parquet":
        pq.write_table(pa.Table.from_pandas(frame), path, row_group_size=1000)
    else:
        frame.to_csv(path, index=False)
    streamed = build_profile(path, batch_rows=700)  # many batches, not aligned to row groups
    in_memory = build_profile(frame, batch_rows=len(frame))
    assert streamed.rows == in_memory.rows == len(frame)
    expected = _exact(in_memory.to_dict())
    if suffix == ".csv":  # CSV holds timestamps as text the reader parses back: same values
        assert _exact(streamed.to_dict())["when"]["count"] == expected["when"]["count"]
        del expected["when"]
    got = _exact(streamed.to_dict())
    assert {k: got[k] for k in expected} == expected
    for name in ("x", "big"):
        mine, theirs = streamed.columns[name], in_memory.columns[name]
        assert mine.mean == pytest.approx(theirs.mean, rel=1e-12)  # type: ignore[union-attr]


def test_profile_of_a_frame_equals_profile_of_its_arrays() -> None:
    frame = _frame(2).drop(columns=["when"])
    from_frame = build_profile(frame, batch_rows=1234)
    from_arrays = profile_arrays({c: frame[c].to_numpy() for c in frame})
    assert _exact(from_frame.to_dict()) == _exact(from_arrays.to_dict())


def test_compare_files_equals_compare_arrays(tmp_path: Path) -> None:
    ref, cur = _frame(3), _frame(4, shift=0.4)
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    on_files = compare(tmp_path / "ref.parquet", tmp_path / "cur.csv")
    on_frames = compare(ref, cur)
    assert on_files.model_dump() == on_frames.model_dump()
    assert set(on_files.drifted_columns) == {"x", "plan"}


def test_compare_against_a_profile_file(tmp_path: Path) -> None:
    ref, cur = _frame(5, n=800), _frame(6, n=700, shift=0.5)
    path = tmp_path / "ref.profile.json"
    path.write_text(build_profile(ref).to_json())
    from_profile = compare(path, cur)
    assert from_profile.reference_from_profile
    assert from_profile.drifted_columns == compare(ref, cur).drifted_columns
    assert read_profile(path).rows == 800


def test_input_errors_name_the_file_or_column(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    _frame(7, n=50).to_parquet(good)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("x,k\n")
    cases = {
        tmp_path / "missing.parquet": "current data file '.*missing.parquet' does not exist",
        tmp_path / "notes.txt": "Cannot read the current data 'notes.txt': use a .parquet or .csv",
        tmp_path / "broken.parquet": "Cannot read the current data '.*broken.parquet'",
        tmp_path / "empty.csv": "Cannot read the current data '.*empty.csv'",
        tmp_path / "header.csv": "current data '.*header.csv' has no rows",
    }
    for path, message in cases.items():
        with pytest.raises(InvalidInput, match=message):
            compare(good, path)
    with pytest.raises(InvalidInput, match="Cannot read the reference from a int"):
        compare(3, good)
    with pytest.raises(InvalidInput, match=r"'.*header.csv' has no rows: nothing to profile"):
        build_profile(tmp_path / "header.csv")
    with pytest.raises(InvalidInput, match=r"profile file '.*nope.json' does not exist"):
        compare(tmp_path / "nope.json", good)


def test_a_column_that_changed_type_between_files(tmp_path: Path) -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1, 2, 3]})
    cur = pd.DataFrame({"x": ["a", "b", "c"], "y": [1, 2, 3]})
    with pytest.raises(InvalidInput, match="Column 'x' changed type"):
        compare(ref, cur)


def test_html_report_escapes_and_draws_every_feature() -> None:
    from steward.monitoring.report import render_html
    from steward.stats.drift import DriftOptions

    ref = pd.DataFrame({"<b>x</b>": np.arange(100.0), "plan": ["a", "b"] * 50})
    cur = pd.DataFrame({"<b>x</b>": np.arange(100.0) + 50, "plan": ["a"] * 100})
    report = compare(ref, cur, options=DriftOptions(histograms=True))
    page = render_html(report, "ref & co", "<cur>")
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
    assert "&lt;cur&gt;" in page
    assert "ref &amp; co" in page
    assert page.count("<svg") == 2
    assert "<script" not in page


def test_streamed_profile_memory_is_one_row_group_not_the_file(tmp_path: Path) -> None:
    """30 row groups of ~1 MB each: Arrow's pool must peak near one of them, not all (pyarrow's
    default pre-buffering kept every row group read). Run in a fresh process: the pool's peak
    is process-wide."""
    import subprocess
    import sys

    path = tmp_path / "big.parquet"
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=300_000) for i in range(4)})
    pq.write_table(pa.Table.from_pandas(frame), path, row_group_size=10_000)  # 30 x 0.32 MB
    code = (
        "import sys, pyarrow as pa; from steward.monitoring.drift import build_profile; "
        f"p = build_profile({str(path)!r}, batch_rows=4096); "
        "print(p.rows, pa.default_memory_pool().max_memory())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rows, peak = out.stdout.split()
    assert int(rows) == 300_000
    assert int(peak) < 4 * 1024 * 1024  # the file decodes to ~9.6 MB
