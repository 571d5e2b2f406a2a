"""The ledger and API tokens through the SDK, embedded and over HTTP."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from steward.client import Client
from steward.domain.enums import Role
from steward.errors import InvalidInput, NotFound, Unauthenticated


def test_list_events_filters(client: Client) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    client.create_model("a")
    client.create_model("b")
    client.update_model("a", team="t")
    run = client.create_run("r")
    actor = client.whoami()[0]

    everything = client.list_events(limit=1000).items
    assert [e.seq for e in everything] == sorted(e.seq for e in everything)
    kinds = [e.kind for e in everything]
    assert kinds[-4:] == ["model.created", "model.created", "model.updated", "run.started"]

    created = client.list_events(kind="model.created").items
    assert [e.subject_id for e in created] == ["a", "b"]
    about_a = client.list_events(subject_type="model", subject_id="a").items
    assert [e.kind for e in about_a] == ["model.created", "model.updated"]
    assert [e.subject_id for e in client.list_events(subject_type="run").items] == [run.id]
    assert {e.actor for e in client.list_events(actor=actor).items} == {actor}
    assert client.list_events(actor="somebody-else").items == []

    assert len(client.list_events(since=start).items) == len(everything)
    assert client.list_events(until=start).items == []
    middle = created[1].seq
    assert all(e.seq > middle for e in client.list_events(after_seq=middle).items)
    newest = client.list_events(newest_first=True, limit=1).items
    assert newest[0].seq == everything[-1].seq

    page = client.list_events(limit=2)
    rest = client.list_events(limit=1000, page_token=page.next_page_token)
    assert [e.seq for e in page.items + rest.items] == [e.seq for e in everything]

    with pytest.raises(InvalidInput) as info:
        client.list_events(page_token="@@@")
    assert info.value.field == "page_token"


def test_ledger_is_hash_chained_and_verifies(client: Client) -> None:
    client.create_model("a")
    run = client.create_run("r")
    client.log_metrics(run.id, {"loss": 1.0})
    events = client.list_events(limit=1000).items
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    report = client.verify_ledger()
    assert report.ok
    assert report.events_checked == len(events)
    assert report.first_broken_seq is None


def test_tokens_create_list_revoke(client: Client) -> None:
    created = client.create_token("ci", "developer", expires_in_days=30)
    assert created.secret.startswith("stw_")
    assert created.token.role is Role.DEVELOPER
    assert created.token.expires_at is not None
    listed = {t.id: t for t in client.list_tokens()}
    assert created.token.id in listed
    assert created.secret not in repr(listed[created.token.id])

    revoked = client.revoke_token(created.token.id)
    assert revoked.revoked is True
    assert {t.id: t for t in client.list_tokens()}[created.token.id].revoked is True
    with pytest.raises(NotFound):
        client.revoke_token("no-such-token")
    with pytest.raises(InvalidInput) as role:
        client.create_token("x", "superuser")
    assert role.value.field == "role"
    with pytest.raises(InvalidInput) as expiry:
        client.create_token("x", "viewer", expires_in_days=-1)
    assert expiry.value.field == "expires_in_days"
    kinds = [e.kind for e in client.list_events(subject_type="token").items]
    assert kinds[-2:] == ["token.created", "token.revoked"]


def test_tokens_authenticate_over_http(client: Client, mode: str) -> None:
    if mode != "http":
        # Embedded mode has no tokens to check: it acts as the local admin.
        assert client.whoami()[1] == "admin"
        return
    url = client.settings.url
    viewer = client.create_token("reader", Role.VIEWER)
    with Client(url=url, token=viewer.secret) as reader:
        assert reader.whoami() == ("token:reader", "viewer")
    unused = client.create_token("soon-revoked", Role.DEVELOPER)
    client.revoke_token(unused.token.id)
    with Client(url=url, token=unused.secret) as revoked, pytest.raises(Unauthenticated):
        revoked.whoami()
    with Client(url=url, token="stw_garbage") as garbage, pytest.raises(Unauthenticated):
        garbage.get_model("x")
