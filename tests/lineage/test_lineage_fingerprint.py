import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from steward.errors import InvalidInput
from steward.lineage import fingerprint


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [0.5, 1.5, 2.5]})


def test_file_fingerprint_is_sha256_of_content(tmp_path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2\n")
    expected = "sha256:" + hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert fingerprint(path) == expected
    assert fingerprint(str(path)) == expected
    path.write_bytes(b"a,b\n1,3\n")
    assert fingerprint(path) != expected


def test_directory_fingerprint_tracks_names_and_contents(tmp_path) -> None:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "one.txt").write_text("1")
    (root / "sub" / "two.txt").write_text("2")
    first = fingerprint(root)
    assert first.startswith("sha256:")
    assert fingerprint(root) == first
    (root / "sub" / "two.txt").write_text("22")
    changed = fingerprint(root)
    assert changed != first
    (root / "sub" / "two.txt").rename(root / "sub" / "three.txt")
    assert fingerprint(root) != changed


def test_missing_path_is_refused(tmp_path) -> None:
    with pytest.raises(InvalidInput) as info:
        fingerprint(tmp_path / "nope")
    assert info.value.field == "data"


def test_dataframe_fingerprint_stable_and_sensitive() -> None:
    base = fingerprint(_frame())
    assert base == fingerprint(_frame())
    changed = _frame()
    changed.loc[1, "c"] = 1.6
    assert fingerprint(changed) != base
    assert fingerprint(_frame().rename(columns={"a": "A"})) != base
    assert fingerprint(_frame().astype({"a": "int32"})) != base
    assert fingerprint(_frame().iloc[::-1]) != base


def test_arrow_fingerprint_ignores_chunking_but_not_values() -> None:
    table = pa.Table.from_pandas(_frame(), preserve_index=False)
    chunked = pa.concat_tables([table.slice(0, 1), table.slice(1)])
    assert chunked.column(0).num_chunks == 2
    assert fingerprint(table) == fingerprint(chunked)
    changed = pa.Table.from_pandas(_frame().assign(a=[1, 2, 4]), preserve_index=False)
    assert fingerprint(changed) != fingerprint(table)


def test_arrow_nested_columns() -> None:
    table = pa.table({"tags": [["a"], ["b", "c"]]})
    assert fingerprint(table) == fingerprint(pa.table({"tags": [["a"], ["b", "c"]]}))
    assert fingerprint(table) != fingerprint(pa.table({"tags": [["a"], ["b", "d"]]}))


def test_numpy_fingerprint() -> None:
    array = np.arange(12, dtype="float64").reshape(3, 4)
    base = fingerprint(array)
    assert base == fingerprint(array.copy())
    assert base == fingerprint(np.asfortranarray(array))
    assert fingerprint(array.reshape(4, 3)) != base
    assert fingerprint(array.astype("float32")) != base
    changed = array.copy()
    changed[2, 3] = -1
    assert fingerprint(changed) != base
    objects = np.array(["a", "b", None], dtype=object)
    assert fingerprint(objects) == fingerprint(objects.copy())


def test_unknown_type_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        fingerprint({"not": "supported"})
    assert info.value.field == "data"
