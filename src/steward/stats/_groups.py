"""Group columns (sensitive features, segments) as integer codes with a label per group.

A group is a distinct value of the column, named by its text (``str(value)``); values with the
same text are one group. Missing values (None, NaN, pandas NA/NaT) form their own group named
``<missing>``, listed last, so rows are never dropped silently. Groups are listed in the order
of their values (numbers numerically, text alphabetically; mixed types by their text).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from steward.errors import InvalidInput
from steward.stats._bootstrap import IntArray
from steward.stats._inputs import as_column, check_lengths, factorize

MISSING_GROUP = "<missing>"


@dataclass(frozen=True)
class GroupColumn:
    name: str
    labels: list[str]  # each group's text, in report order
    codes: IntArray  # each row's index into ``labels``

    def rows_by_group(self) -> list[IntArray]:
        """The row indices of each group, in ascending row order (a stable counting sort)."""
        # The smallest integer type makes numpy's stable sort a radix sort (~6x faster).
        small = self.codes.astype(np.min_scalar_type(max(len(self.labels) - 1, 0)))
        order = np.argsort(small, kind="stable")
        bounds = np.cumsum(np.bincount(self.codes, minlength=len(self.labels)))
        return np.split(order, bounds[:-1])


def encode_groups(groups: Mapping[str, Any] | None, n: int) -> list[GroupColumn]:
    if groups is None:
        return []
    if not isinstance(groups, Mapping):
        raise InvalidInput(
            "'groups' must map a column name to one group value per row, e.g. {'sex': df['sex']}.",
            field="groups",
        )
    columns = []
    for name, values in groups.items():
        if not isinstance(name, str) or not name:
            raise InvalidInput(
                f"Group column names must be non-empty text. Got {name!r}.", field="groups"
            )
        field = f"groups.{name}"
        arr = as_column(values, field)
        check_lengths(n, arr.size, field)
        columns.append(_encode_column(name, arr, field))
    return columns


def _encode_column(name: str, values: Any, field: str) -> GroupColumn:
    uniques, codes, has_missing = factorize(values, field)
    texts = [str(value) for value in uniques]
    order = _display_order(uniques, texts)
    if has_missing:
        texts.append(MISSING_GROUP)
        order.append(len(uniques))
    labels: list[str] = []
    index_of_text: dict[str, int] = {}
    remap = np.empty(len(texts), dtype=np.intp)
    for old in order:
        text = texts[old]
        if text not in index_of_text:
            index_of_text[text] = len(labels)
            labels.append(text)
        remap[old] = index_of_text[text]
    return GroupColumn(name, labels, remap[codes])


def _display_order(uniques: list[Any], texts: list[str]) -> list[int]:
    positions = list(range(len(uniques)))
    try:
        return sorted(positions, key=lambda i: uniques[i])
    except TypeError:  # mixed types: order by their text
        return sorted(positions, key=lambda i: texts[i])
