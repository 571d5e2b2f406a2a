"""Models, versions, aliases, search and model cards through the SDK, embedded and over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from steward.client import Client
from steward.domain.entities import ModelVersion
from steward.errors import AlreadyExists, InvalidInput, NotFound
from steward.flavors import package_model


@pytest.fixture(scope="module")
def skops_files() -> dict[str, bytes]:
    """A tiny fitted estimator packaged once; tests register it as many versions as they need."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.random(40), "b": rng.random(40)})
    model = LogisticRegression().fit(frame, (frame["a"] > 0.5).astype(int))
    return package_model(model).files


@pytest.fixture
def register(client: Client, skops_files: dict[str, bytes]) -> Callable[..., ModelVersion]:
    refs = {name: client.upload_artifact(content) for name, content in skops_files.items()}

    def make(name: str, **kwargs: object) -> ModelVersion:
        try:
            client.get_model(name)
        except NotFound:
            client.create_model(name)
        return client.create_version(name, flavor="sklearn", files=refs, **kwargs)  # type: ignore[arg-type]

    return make


def test_create_get_update_model(client: Client) -> None:
    created = client.create_model(
        "churn", team="growth", risk_tier=2, use_case="retention", tags={"team": "growth"},
        description="Who leaves next month.",
    )  # fmt: skip
    assert created.name == "churn"
    assert created.risk_tier == 2
    assert created.owner == client.whoami()[0]
    fetched = client.get_model("churn")
    assert fetched == created

    updated = client.update_model(
        "churn", risk_tier=1, tags={"team": "risk"}, card={"intended_use": "Retention offers."}
    )
    assert updated.risk_tier == 1
    assert updated.tags == {"team": "risk"}
    assert updated.card["intended_use"] == "Retention offers."
    assert updated.team == "growth"  # fields not sent are kept
    assert client.get_model("churn").risk_tier == 1


def test_list_models_filters(client: Client) -> None:
    client.create_model("fraud-card", risk_tier=1, tags={"team": "risk"})
    client.create_model("fraud-wire", risk_tier=2, tags={"team": "risk"})
    client.create_model("churn", risk_tier=3, tags={"team": "growth"})

    def names(flt: str) -> list[str]:
        return sorted(m.name for m in client.search_models(flt))

    assert names("tier <= 2") == ["fraud-card", "fraud-wire"]
    assert names("tags.team = 'risk'") == ["fraud-card", "fraud-wire"]
    assert names("name like 'fraud%' and risk_tier = 1") == ["fraud-card"]
    assert names("tags.team = 'nobody'") == []
    assert len(client.search_models()) == 3


def test_list_models_pagination_covers_every_page(client: Client) -> None:
    expected = sorted(f"model-{i:02d}" for i in range(7))
    for name in expected:
        client.create_model(name)
    seen, token, pages = [], None, 0
    while True:
        page = client.list_models(limit=3, page_token=token)
        pages += 1
        assert len(page.items) <= 3
        seen += [m.name for m in page.items]
        token = page.next_page_token
        if token is None:
            break
    assert pages == 3
    assert sorted(seen) == expected
    assert len(set(seen)) == len(seen)


def test_duplicate_model_is_already_exists(client: Client) -> None:
    client.create_model("dup")
    with pytest.raises(AlreadyExists) as info:
        client.create_model("dup")
    assert "dup" in info.value.message
    assert info.value.code == "already_exists"


def test_unknown_model_is_not_found_and_a_lookup_error(client: Client) -> None:
    with pytest.raises(NotFound) as info:
        client.get_model("ghost")
    assert isinstance(info.value, LookupError)
    with pytest.raises(LookupError):
        client.get_version("models:/ghost/1")
    with pytest.raises(NotFound):
        client.update_model("ghost", team="x")
    with pytest.raises(NotFound):
        client.set_alias("ghost", "champion", 1)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "bad name!"}, "name"),
        ({"name": "-leading-dash"}, "name"),
        ({"name": "ok", "risk_tier": 7}, "risk_tier"),
        ({"name": "ok", "risk_tier": 0}, "risk_tier"),
        ({"name": "ok", "card": {"not_a_section": "x"}}, "card"),
    ],
)
def test_invalid_model_input_names_the_field(
    client: Client, kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        client.create_model(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


def test_metric_that_is_not_a_number_is_invalid(
    client: Client, register: Callable[..., ModelVersion]
) -> None:
    with pytest.raises(InvalidInput) as info:
        register("m", metrics={"auc": "high"})
    assert info.value.field == "metrics.auc"
    with pytest.raises(InvalidInput) as info:
        register("m", metrics={"auc": float("nan")})
    assert info.value.field == "metrics"
    version = register("m", metrics={"auc": 0.9})
    with pytest.raises(InvalidInput) as info:
        client.update_version("m", version.version, metrics={"auc": True})
    assert info.value.field == "metrics.auc"


def test_versions_numbered_and_resolved(
    client: Client, register: Callable[..., ModelVersion]
) -> None:
    first = register("scorer", metrics={"auc": 0.7})
    second = register("scorer", metrics={"auc": 0.9}, tags={"data": "2024"})
    assert (first.version, second.version) == (1, 2)
    assert client.get_version("models:/scorer/1") == first
    assert client.get_version("models:/scorer/latest").version == 2
    assert client.get_model("scorer").latest_version == 2
    with pytest.raises(NotFound) as info:
        client.get_version("models:/scorer/3")
    assert info.value.details["field"] == "version"
    with pytest.raises(InvalidInput) as bad_uri:
        client.get_version("scorer/1")
    assert bad_uri.value.field == "uri"

    updated = client.update_version("scorer", 1, description="baseline", metrics={"f1": 0.5})
    assert updated.description == "baseline"
    assert updated.metrics == {"auc": 0.7, "f1": 0.5}


def test_aliases_set_move_delete(client: Client, register: Callable[..., ModelVersion]) -> None:
    register("ranker")
    register("ranker")
    alias = client.set_alias("ranker", "champion", 1)
    assert (alias.alias, alias.version) == ("champion", 1)
    assert client.get_version("models:/ranker@champion").version == 1
    assert client.get_model("ranker").aliases == {"champion": 1}

    client.set_alias("ranker", "champion", 2)  # moves atomically
    assert client.get_version("models:/ranker@champion").version == 2
    assert client.get_version("models:/ranker/1").aliases == []
    assert client.get_version("models:/ranker/2").aliases == ["champion"]

    client.delete_alias("ranker", "champion")
    with pytest.raises(NotFound) as info:
        client.get_version("models:/ranker@champion")
    assert info.value.details["field"] == "alias"
    with pytest.raises(NotFound):
        client.delete_alias("ranker", "champion")
    with pytest.raises(NotFound):
        client.set_alias("ranker", "champion", 9)
    with pytest.raises(InvalidInput) as bad:
        client.set_alias("ranker", "latest", 1)
    assert bad.value.field == "alias"

    kinds = [e.kind for e in client.list_events(subject_id="ranker", subject_type="model").items]
    assert kinds.count("alias.set") == 2
    assert kinds.count("alias.deleted") == 1


def test_search_versions_by_metric(client: Client, register: Callable[..., ModelVersion]) -> None:
    register("a", metrics={"auc": 0.75})
    register("a", metrics={"auc": 0.85}, tags={"team": "risk"})
    register("b", metrics={"auc": 0.95})
    register("b", metrics={"f1": 0.99})

    def found(flt: str | None, model: str | None = None) -> set[tuple[str, int]]:
        return {(v.model_name, v.version) for v in client.search_versions(flt, model=model)}

    assert found("metrics.auc > 0.8") == {("a", 2), ("b", 1)}
    assert found("metrics.auc > 0.8", model="a") == {("a", 2)}
    assert found("metrics.auc > 0.8 and tags.team = 'risk'") == {("a", 2)}
    assert found("metrics.auc <= 0.8") == {("a", 1)}
    assert found("version >= 2") == {("a", 2), ("b", 2)}
    assert len(found(None)) == 4

    page = client.list_versions("metrics.auc > 0", limit=2)
    assert len(page.items) == 2
    rest = client.list_versions("metrics.auc > 0", limit=2, page_token=page.next_page_token)
    assert len(rest.items) == 1
    assert rest.next_page_token is None

    for bad in ("metrics.auc >", "metrics.auc > 'high'", "colour = 'red'", "auc ~ 1"):
        with pytest.raises(InvalidInput) as info:
            client.search_versions(bad)
        assert info.value.field == "filter"
    with pytest.raises(InvalidInput) as token:
        client.list_versions(page_token="not-a-token")
    assert token.value.field == "page_token"
    with pytest.raises(NotFound):
        client.search_versions(model="ghost")


def test_model_card_markdown(client: Client, register: Callable[..., ModelVersion]) -> None:
    register("carded", metrics={"auc": 0.91, "f1": 0.8})
    client.update_model(
        "carded", card={"intended_use": "Rank loan applications.", "limitations": "EU only."}
    )
    client.set_alias("carded", "champion", 1)
    card = client.model_card("models:/carded@champion")
    assert card.startswith("# Model card: carded v1")
    for heading in (
        "## Summary", "## Metrics", "## Lineage", "## Intended use", "## Limitations",
        "## Ethical considerations", "## Training data", "## Evaluation",
    ):  # fmt: skip
        assert heading in card
    assert "| auc | 0.91 |" in card
    assert "| f1 | 0.8 |" in card
    assert "Rank loan applications." in card
    assert "champion" in card
    assert "Not written yet" in card  # unfilled sections are flagged, not hidden
    with pytest.raises(NotFound):
        client.model_card("models:/carded/2")
