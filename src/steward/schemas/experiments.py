"""Wire models of the experiments product: a metric's definition, an experiment to create, and
outcome events in (JSON rows or a Parquet body) with a receipt out.

The table helpers are shared by the client (which turns a DataFrame or a file into a table
before sending it as Parquet), the API (which reads the Parquet body) and the experiments
service (which takes the same inputs in-process), so every way in reads a table the same.
pyarrow loads inside them, not at import: ``steward.client`` imports this module.
"""

from __future__ import annotations

import io
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NotRequired, TypeAlias

import pydantic_core
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictStr,
    ValidationInfo,
    field_validator,
    with_config,
)
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from steward.domain.experiments import (
    Aggregation,
    Correction,
    DecisionAction,
    Direction,
    ExperimentState,
    Method,
    MetricRole,
    MetricSource,
    check_name,
)
from steward.errors import InvalidInput, PayloadTooLarge
from steward.schemas import RequestBody
from steward.schemas.labels import PARQUET_MEDIA_TYPE

if TYPE_CHECKING:
    import pyarrow as pa

# Most outcome events one call logs: they are validated in memory and written in one go
# (1M events with 36-character unit ids is ~60 MB of Arrow).
MAX_OUTCOMES_PER_CALL = 1_000_000
# Largest request body the outcomes route reads (JSON or Parquet).
MAX_OUTCOMES_BODY_BYTES = 256 * 1024 * 1024
MAX_TEXT_CHARS = 10_000  # a description or a hypothesis: a paragraph, not a document
MAX_METRICS = 50  # metrics one experiment reads
MAX_VERSION = 2**31 - 1

OutcomeSource = Literal["sdk", "api", "file"]
# What the client hands its backend: rows (a list of mappings) or a table.
OutcomePayload: TypeAlias = "list[Any] | pa.Table"
# The canonical columns of an outcome table, and the ones it must have.
OUTCOME_TABLE_COLUMNS = ("name", "value", "unit_id", "request_id", "timestamp")


def _name(what: str) -> Any:
    return AfterValidator(lambda value: check_name(value, what))


MetricName = Annotated[str, Field(max_length=128), _name("metric")]
OutcomeName = Annotated[str, Field(max_length=128), _name("outcome")]


# -- metrics ---------------------------------------------------------------------------------
class MetricBody(RequestBody):
    """``PUT /metrics/{name}``: where a metric's values come from and how a unit's values become
    the unit's one number. ``event``: the outcome (source ``outcome``) or the prediction-log
    column (``prediction``: ``prediction`` or ``score``); latency and error take none.
    ``covariate``: an outcome whose pre-period value per unit is CUPED's covariate."""

    source: MetricSource
    event: str | None = Field(default=None, max_length=128, validate_default=True)
    aggregation: Aggregation = Aggregation.SUM
    covariate: OutcomeName | None = None
    description: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)

    @field_validator("event")
    @classmethod
    def _event_matches_source(cls, event: str | None, info: ValidationInfo) -> str | None:
        source = info.data.get("source")
        if source is None:  # the source itself was refused: that is the error to report
            return event
        if source is MetricSource.OUTCOME:
            if not event:
                raise ValueError("a metric from the outcome log names its outcome event")
            return check_name(event, "outcome")
        if source is MetricSource.PREDICTION:
            if event not in ("prediction", "score"):
                raise ValueError("a prediction metric reads the column 'prediction' or 'score'")
            return event
        if event is not None:
            raise ValueError(
                f"a {source.value} metric reads the prediction log itself; leave out the event"
            )
        return None


# -- experiments -----------------------------------------------------------------------------
class ExperimentMetricIn(RequestBody):
    """One metric of an experiment: its role, which way is better, and for a guardrail the
    relative degradation tolerated (0.02: up to 2% worse; default 0)."""

    metric: MetricName
    role: MetricRole
    direction: Direction = Direction.INCREASE
    tolerance: float | None = Field(default=None, ge=0, le=1)

    @field_validator("tolerance")
    @classmethod
    def _guardrails_only(cls, tolerance: float | None, info: ValidationInfo) -> float | None:
        if tolerance is not None and info.data.get("role") not in (None, MetricRole.GUARDRAIL):
            raise ValueError("only a guardrail has a tolerance")
        return tolerance


class ExperimentCreate(RequestBody):
    """``POST /experiments``. The variants are the deployment's (its split's versions, or its
    champion and canary); ``control`` defaults to the champion (a split without it: its lowest
    version); ``start`` to now."""

    name: Annotated[str, Field(max_length=128), _name("experiment")]
    deployment: str = Field(min_length=1, max_length=128)
    metrics: list[ExperimentMetricIn] = Field(min_length=1, max_length=MAX_METRICS)
    control: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    method: Method = Method.FIXED
    correction: Correction = Correction.HOLM
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    mde: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    planned_units: int | None = Field(default=None, ge=2, le=2**53)
    hypothesis: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    start: AwareDatetime | None = None

    @field_validator("metrics")
    @classmethod
    def _one_primary_each_once(cls, metrics: list[ExperimentMetricIn]) -> list[ExperimentMetricIn]:
        primaries = [m.metric for m in metrics if m.role is MetricRole.PRIMARY]
        if len(primaries) != 1:
            raise ValueError(
                f"an experiment has exactly one primary metric; got {len(primaries)}"
                + (f" ({', '.join(primaries)})" if primaries else "")
            )
        names = [m.metric for m in metrics]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"each metric plays one role; {', '.join(twice)} is named twice")
        return metrics


class ExperimentQuery(BaseModel):
    """Filters of ``steward experiment list`` / ``GET /experiments``, latest started first."""

    model_config = ConfigDict(extra="forbid")

    deployment: str | None = Field(default=None, min_length=1, max_length=128)
    state: ExperimentState | None = None


# What ``POST /experiments/{name}/analysis`` answers with: the analysis as JSON, or its
# standalone web page.
AnalysisFormat = Literal["json", "html"]


class DecisionCreate(RequestBody):
    """``POST /experiments/{name}/decision``: what a person decided and why. ``variant``: the
    version a ship decision ships (default: the one treatment of a two-arm experiment).
    ``apply``: act on the deployment too (ship: promote the variant to production if needed
    and make it the champion; rollback: all traffic back to the champion)."""

    action: DecisionAction
    reason: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    variant: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    apply: bool = False


def metric_shorthand(text: str, role: MetricRole, field: str) -> dict[str, Any]:
    """``NAME[:DIRECTION[:TOLERANCE]]`` (``latency:decrease:0.05``) as an ExperimentMetricIn's
    fields; InvalidInput naming ``field`` when it is not that."""
    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise InvalidInput(
            f"Write a metric as NAME, NAME:DIRECTION or NAME:DIRECTION:TOLERANCE "
            f"(e.g. latency:decrease:0.05); got {text!r}.",
            field=field,
        )
    item: dict[str, Any] = {"metric": parts[0], "role": role}
    if len(parts) > 1:
        if parts[1] not in {d.value for d in Direction}:
            raise InvalidInput(
                f"The direction of {parts[0]!r} is 'increase' (higher is better) or 'decrease' "
                f"(lower is better); got {parts[1]!r}.",
                field=field,
            )
        item["direction"] = parts[1]
    if len(parts) > 2:
        try:
            item["tolerance"] = float(parts[2])
        except ValueError:
            raise InvalidInput(
                f"The tolerance of {parts[0]!r} is a number from 0 to 1 (0.02: up to 2% worse); "
                f"got {parts[2]!r}.",
                field=field,
            ) from None
    return item


# -- outcomes --------------------------------------------------------------------------------
def _outcome_value(value: object) -> float:
    """One check rather than a union, so a failure names ``outcomes.0.value`` once. numpy
    numbers and booleans count (an SDK row built from a DataFrame holds them)."""
    kind = getattr(getattr(value, "dtype", None), "kind", "")
    if isinstance(value, numbers.Real) or kind in ("b", "i", "u", "f"):
        try:
            number = float(value)  # type: ignore[arg-type]
        except (OverflowError, TypeError, ValueError):
            number = math.inf
        if math.isfinite(number):
            return number
    raise ValueError(f"an outcome's value is a finite number or a boolean, not {value!r:.40}")


OutcomeValue = Annotated[
    float, PlainValidator(_outcome_value, json_schema_input_type=bool | int | float)
]
OutcomeKey = Annotated[StrictStr, Field(min_length=1, max_length=1024)]


# A TypedDict, not a model, like LabelIn: no model instance is built per row.
@with_config(ConfigDict(extra="forbid"))
class OutcomeIn(TypedDict):
    """One outcome event: its ``name``, its ``value``, exactly one of ``unit_id`` and
    ``request_id``, and when it happened (``timestamp``; default: when it is logged; without a
    time zone: UTC)."""

    name: OutcomeName
    value: OutcomeValue
    unit_id: NotRequired[OutcomeKey | None]
    request_id: NotRequired[OutcomeKey | None]
    timestamp: NotRequired[datetime | None]


class OutcomesCreate(RequestBody):
    """``POST /outcomes`` as JSON."""

    bulk_fields = frozenset({"outcomes"})  # Parquet holds NUL fine; no second walk of the rows

    outcomes: list[OutcomeIn] = Field(min_length=1, max_length=MAX_OUTCOMES_PER_CALL)
    source: OutcomeSource = "api"


class OutcomeReceipt(BaseModel):
    """What one call logged."""

    model_config = ConfigDict(frozen=True)

    rows: int = Field(description="Events written.")
    outcomes: dict[str, int] = Field(description="Events written per outcome name.")
    files: list[str] = Field(
        description="The files written, relative to the outcome log's root: one per outcome "
        "and day."
    )
    source: OutcomeSource
    logged_at: datetime


# -- tables ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutcomeColumns:
    """Which column of a table holds what (the CLI's --*-column options)."""

    name: str = "name"
    value: str = "value"
    unit_id: str = "unit_id"
    request_id: str = "request_id"
    timestamp: str = "timestamp"


def outcome_table(data: object, columns: OutcomeColumns | None = None) -> pa.Table:
    """``data`` (a .parquet/.csv path, a pyarrow Table or a pandas DataFrame) as a table of the
    canonical columns it has: ``name``, ``value``, and ``unit_id``, ``request_id``,
    ``timestamp`` when present (a column named other than its default must be present); other
    columns are dropped. A CSV's ids are read as text."""
    names = columns or OutcomeColumns()
    wanted = {canonical: getattr(names, canonical) for canonical in OUTCOME_TABLE_COLUMNS}
    table, where, known = _read(data, names)
    for canonical, column in wanted.items():  # required, or named on purpose (not a typo)
        required = canonical in ("name", "value") or column != canonical
        if required and column not in table.column_names:
            raise _missing_column(canonical, column, where, known)
    if wanted["unit_id"] not in table.column_names and (
        wanted["request_id"] not in table.column_names
    ):
        raise _missing_column("unit_id", wanted["unit_id"], where, known)
    present = {c: source for c, source in wanted.items() if source in table.column_names}
    return table.select(list(present.values())).rename_columns(list(present))


def _missing_column(canonical: str, column: str, where: str, known: list[str]) -> InvalidInput:
    option = canonical.replace("_id", "").replace("timestamp", "time")
    return InvalidInput(
        f"The outcomes ({where}) have no column {column!r} for the {canonical}; the columns "
        f"are: {', '.join(known[:20]) or 'none'}. Name it with --{option}-column "
        f"({option}_column=... in the SDK)."
        + (" Each event needs a unit_id or a request_id column." if canonical == "unit_id" else ""),
        field=canonical,
    )


def _read(data: object, names: OutcomeColumns) -> tuple[pa.Table, str, list[str]]:
    """The table (a file: only the wanted columns), how to name it, all its columns."""
    import pyarrow as pa

    if isinstance(data, str | Path):
        table, known = _read_file(Path(data), names)
        return table, repr(str(data)), known
    if isinstance(data, pa.Table):
        return data, "a pyarrow Table", data.column_names
    if type(data).__name__ == "DataFrame" and hasattr(data, "columns"):
        try:
            table = pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
            raise InvalidInput(
                f"Cannot convert the outcomes DataFrame: {_short(exc)}.", field="outcomes"
            ) from exc
        return table, "a DataFrame", table.column_names
    raise InvalidInput(
        f"Cannot read outcomes from a {type(data).__name__}: pass a list of "
        "{'name', 'value', 'unit_id' or 'request_id', 'timestamp'?} rows, a pandas DataFrame, "
        "a pyarrow Table, or the path of a .parquet or .csv file.",
        field="outcomes",
    )


def _read_file(path: Path, names: OutcomeColumns) -> tuple[pa.Table, list[str]]:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if not path.is_file():
        raise InvalidInput(f"The outcomes file {str(path)!r} does not exist.", field="outcomes")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise InvalidInput(
            f"Cannot read outcomes from {path.name!r}: use a .parquet or .csv file.",
            field="outcomes",
        )
    wanted = {getattr(names, c) for c in OUTCOME_TABLE_COLUMNS}
    try:
        if suffix != ".csv":  # columnar: the other columns are never read
            known = pq.read_schema(path).names
            return pq.read_table(path, columns=[n for n in known if n in wanted]), known
        types = {names.unit_id: pa.string(), names.request_id: pa.string(), names.name: pa.string()}
        convert = pcsv.ConvertOptions(column_types=types, strings_can_be_null=True)
        table = pcsv.read_csv(path, convert_options=convert)
        return table, table.column_names
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInput(
            f"Cannot read the outcomes file {str(path)!r}: {_short(exc)}. Check that it is a "
            "valid Parquet or CSV file.",
            field="outcomes",
        ) from exc


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


@dataclass(frozen=True)
class OutcomeRequest:
    """One outcomes request as the client sends it."""

    content: bytes
    media_type: str
    params: dict[str, str]


def outcome_request(outcomes: OutcomePayload, source: OutcomeSource) -> OutcomeRequest:
    """JSON for rows, Parquet for a table; refused here (as the server would) when it is over
    MAX_OUTCOMES_BODY_BYTES."""
    if isinstance(outcomes, list):
        request = OutcomeRequest(_json_body(outcomes, source), "application/json", {})
    else:
        request = OutcomeRequest(parquet_body(outcomes), PARQUET_MEDIA_TYPE, {"source": source})
    if len(request.content) > MAX_OUTCOMES_BODY_BYTES:
        raise PayloadTooLarge(
            f"The outcomes make a {len(request.content):,}-byte request, over the server's "
            f"limit of {MAX_OUTCOMES_BODY_BYTES:,} bytes; split them into several calls.",
            field="outcomes",
        )
    return request


def parquet_body(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def _json_body(rows: list[Any], source: OutcomeSource) -> bytes:
    """NaN stays NaN on the wire, so the server names it rather than seeing a null; numpy
    scalars go as the Python values they hold."""
    body = {"outcomes": rows, "source": source}
    try:
        return pydantic_core.to_json(body, inf_nan_mode="constants")
    except pydantic_core.PydanticSerializationError:
        pass
    plain = [{k: _plain(v) for k, v in r.items()} if isinstance(r, Mapping) else r for r in rows]
    try:
        return pydantic_core.to_json({**body, "outcomes": plain}, inf_nan_mode="constants")
    except pydantic_core.PydanticSerializationError:
        raise InvalidInput(
            "The outcomes cannot be sent as JSON: each is a mapping of name, value, unit_id or "
            "request_id, and timestamp.",
            field="outcomes",
        ) from None


def _plain(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


def table_from_parquet(body: bytes) -> pa.Table:
    """A Parquet request body as a table; InvalidInput naming the body when it is not one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(pa.BufferReader(body))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInput(
            f"The request body is not a readable Parquet file: {_short(exc)}.", field="body"
        ) from exc


__all__ = [
    "MAX_OUTCOMES_BODY_BYTES",
    "MAX_OUTCOMES_PER_CALL",
    "PARQUET_MEDIA_TYPE",
    "AnalysisFormat",
    "DecisionCreate",
    "ExperimentCreate",
    "ExperimentMetricIn",
    "ExperimentQuery",
    "MetricBody",
    "OutcomeColumns",
    "OutcomeIn",
    "OutcomePayload",
    "OutcomeReceipt",
    "OutcomeRequest",
    "OutcomeSource",
    "OutcomesCreate",
    "metric_shorthand",
    "outcome_request",
    "outcome_table",
    "parquet_body",
    "table_from_parquet",
]
