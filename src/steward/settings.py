"""Settings: the only module that reads the environment.

Precedence: explicit arguments (CLI flags) > ``STEWARD_*`` environment variables >
``steward.toml`` (in the working directory, or the file named by ``STEWARD_CONFIG``) > defaults.
Built once at an entry point and passed down; nothing below reads ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _default_home() -> Path:
    return Path.home() / ".steward"


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEWARD_DATABASE_", extra="ignore")

    url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata store; default sqlite:///STEWARD_HOME/steward.db.",
    )
    pool_size: int = Field(default=5, ge=1, description="Connections kept open per process.")


class ArtifactSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEWARD_ARTIFACTS_", extra="ignore")

    root: str | None = Field(
        default=None,
        description="fsspec URL or folder for artifacts; default STEWARD_HOME/artifacts.",
    )
    max_bytes: int = Field(
        default=2 * 1024**3, ge=1, description="Largest artifact accepted, in bytes."
    )


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEWARD_SERVER_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Address `steward server` binds.")
    port: int = Field(default=5050, ge=1, le=65535, description="Port `steward server` binds.")
    forwarded_allow_ips: str = Field(
        default="127.0.0.1,::1",
        description="Proxies whose X-Forwarded-For/-Proto the server believes: comma-separated "
        "addresses or networks, or * (uvicorn's FORWARDED_ALLOW_IPS).",
    )
    access_log: bool = Field(
        default=False,
        description="Log a line per request (uvicorn's access log); every change is in the "
        "ledger either way.",
    )


PredictionLogCompression = Literal["snappy", "lz4", "zstd", "none"]
PredictionLogWriterKind = Literal["process", "thread"]


class PredictionLogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEWARD_PREDICTION_LOG_", extra="ignore")

    root: str | None = Field(
        default=None,
        description="fsspec URL or folder of the prediction log; default STEWARD_HOME/predictions.",
    )
    queue_size: int = Field(
        default=10_000,
        ge=1,
        description="Records buffered in memory per server; when full, new ones are dropped.",
    )
    flush_rows: int = Field(
        default=1_000, ge=1, description="Buffered records that trigger a write before the timer."
    )
    flush_seconds: float = Field(
        default=1.0, gt=0, description="Longest time a record waits in memory before it is written."
    )
    compression: PredictionLogCompression = Field(
        default="snappy",
        description="Parquet compression of the log's files: snappy (Parquet's default), lz4, "
        "zstd (files ~15% smaller, about twice the writer's CPU on the serving machine) or none.",
    )
    writer: PredictionLogWriterKind = Field(
        default="thread",
        description="Who turns a local log's column blocks into Parquet: threads of the server "
        "(the default) or two child processes of it, whose GIL is not the server's.",
    )


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEWARD_GATEWAY_", extra="ignore")

    inline_budget_ms: float = Field(
        default=2.0,
        ge=0,
        le=1000,
        description=(
            "`steward serve` calls a scikit-learn or ONNX model on its event loop, without a "
            "thread hop, when the call is measured under this budget (and a tenth of the "
            "deployment's timeout); 0 sends every call to the model thread pool."
        ),
    )


class LabelLogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEWARD_LABELS_", extra="ignore")

    root: str | None = Field(
        default=None,
        description="fsspec URL or folder of the label log; default STEWARD_HOME/labels.",
    )


class OutcomeLogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEWARD_OUTCOMES_", extra="ignore")

    root: str | None = Field(
        default=None,
        description="fsspec URL or folder of the outcome log; default STEWARD_HOME/outcomes.",
    )


class MonitorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEWARD_MONITOR_", extra="ignore")

    scheduler: bool = Field(
        default=True,
        description=(
            "Run every deployment's monitor on its interval inside `steward server`; off when "
            "an orchestrator (cron, Airflow) calls `steward monitor run` instead."
        ),
    )
    tick_s: float = Field(
        default=30.0,
        gt=0,
        description="How often the server's scheduler looks for monitors that are due.",
    )


class AlertSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEWARD_ALERTS_", extra="ignore")

    webhook_url: SecretStr | None = Field(
        default=None,
        description=(
            'Slack-compatible incoming webhook that gets a message ({"text": ...}) on each '
            "automatic canary rollback and each monitor alert; unset: alerts are logged only."
        ),
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STEWARD_", extra="ignore")

    home: Path = Field(
        default_factory=_default_home,
        description="Folder of the embedded store (database and artifacts).",
    )
    url: str | None = Field(
        default=None, description="Server URL; when set, the SDK and CLI talk to it over HTTP."
    )
    token: SecretStr | None = Field(
        default=None, description="API token the SDK and CLI send to the server."
    )
    actor: str | None = Field(
        default=None,
        description="Name recorded as the actor in embedded mode; default the OS user.",
    )
    allow_trusted_models: bool = Field(
        default=False,
        description="Allow loading python-flavor (pickled) models registered as trusted.",
    )
    reproduce_capture: Path | None = Field(
        default=None,
        description=(
            "Set by `steward reproduce` for the training command it re-runs: log_model then "
            "appends what it would register to this JSON-lines file and registers nothing."
        ),
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    artifacts: ArtifactSettings = Field(default_factory=ArtifactSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    prediction_log: PredictionLogSettings = Field(
        default_factory=PredictionLogSettings,
        description="The prediction log: where it is written and how it is batched.",
    )
    gateway: GatewaySettings = Field(
        default_factory=GatewaySettings,
        description="How `steward serve` runs model calls.",
    )
    labels: LabelLogSettings = Field(
        default_factory=LabelLogSettings,
        description="The label log: ground truth joined to predictions by request id.",
    )
    outcomes: OutcomeLogSettings = Field(
        default_factory=OutcomeLogSettings,
        description="The outcome log: events per unit or request, read by experiment metrics.",
    )
    monitor: MonitorSettings = Field(
        default_factory=MonitorSettings,
        description="The server's monitor scheduler.",
    )
    alerts: AlertSettings = Field(
        default_factory=AlertSettings,
        description="Where alerts go (canary rollbacks, monitor alerts, incidents).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = os.environ.get("STEWARD_CONFIG", "steward.toml")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )

    @property
    def database_url(self) -> str:
        if self.database.url is not None:
            return self.database.url.get_secret_value()
        return f"sqlite:///{self.home / 'steward.db'}"

    @property
    def artifact_root(self) -> str:
        return self.artifacts.root or str(self.home / "artifacts")

    @property
    def prediction_log_root(self) -> str:
        return self.prediction_log.root or str(self.home / "predictions")

    @property
    def label_log_root(self) -> str:
        return self.labels.root or str(self.home / "labels")

    @property
    def outcome_log_root(self) -> str:
        return self.outcomes.root or str(self.home / "outcomes")

    @property
    def alert_webhook_url(self) -> str | None:
        url = self.alerts.webhook_url
        return None if url is None else url.get_secret_value()

    def masked(self) -> dict[str, Any]:
        """The effective values with secrets masked, for `steward settings show`."""
        data = self.model_dump(mode="json")
        return data


def reproduce_environment(
    capture_file: Path, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a training command re-run by ``steward reproduce``.

    ``base`` (default: this process's environment, copied here because only this module reads
    it) with ``STEWARD_REPRODUCE_CAPTURE`` naming ``capture_file``, so the child's ``log_model``
    writes there instead of registering a version.
    """
    env = dict(os.environ if base is None else base)
    env["STEWARD_REPRODUCE_CAPTURE"] = str(capture_file)
    return env


def os_user() -> str:
    """The login name, for the embedded actor; falls back when the OS has none."""
    for key in ("USER", "USERNAME", "LOGNAME"):
        value = os.environ.get(key)
        if value:
            return value
    return "local"
