"""A model's input/output signature: named columns with dtypes and shapes."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

# dtypes a signature may name; numpy spellings, plus "string" / "bool" / "object" for tables.
SIGNATURE_DTYPES = frozenset(
    {
        "float16", "float32", "float64",
        "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64",
        "bool", "string", "object", "datetime64[ns]",
    }
)  # fmt: skip


class ColumnSpec(BaseModel):
    """One named input or output; ``shape`` uses -1 for a free dimension (the batch).

    ``nullable=False``: missing values (null / NaN) are refused in this input.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=256)]
    dtype: str
    shape: list[int] = Field(default_factory=lambda: [-1])
    # Left out of dumps while true, the default: signatures stored before it existed, and their
    # hashes in the ledger, serialize exactly as they did.
    nullable: bool = Field(default=True, exclude_if=lambda value: value is True)

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        if value not in SIGNATURE_DTYPES:
            known = ", ".join(sorted(SIGNATURE_DTYPES))
            raise ValueError(f"unknown dtype {value!r}; use one of: {known}")
        return value

    @field_validator("shape")
    @classmethod
    def _valid_shape(cls, value: list[int]) -> list[int]:
        if any(d < -1 or d == 0 for d in value):
            raise ValueError(f"shape dimensions must be positive or -1 (free), got {value}")
        return value


class Signature(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: list[ColumnSpec] = Field(default_factory=list)
    outputs: list[ColumnSpec] = Field(default_factory=list)

    @field_validator("inputs", "outputs")
    @classmethod
    def _unique_names(cls, value: list[ColumnSpec]) -> list[ColumnSpec]:
        names = [c.name for c in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"column names must be unique, repeated: {', '.join(duplicates)}")
        return value

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.inputs]
