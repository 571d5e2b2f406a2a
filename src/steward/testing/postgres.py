"""Scratch PostgreSQL databases and schemas for tests, so test sessions never see each other.

``temporary_database(server_url)`` creates ``steward_test_<tag>_<random>`` through an autocommit
connection to ``server_url`` and drops it (forcibly) afterwards; ``temporary_schema(url)`` makes
a fresh schema inside a database and returns a URL whose connections use it as ``search_path``,
so a store built on that URL starts empty and migrates into it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from steward.store.sql.engine import normalize_url

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def scratch_name(prefix: str, tag: str = "") -> str:
    """A fresh lower-case identifier, e.g. ``steward_test_gw0_1a2b3c4d``."""
    parts = [prefix, re.sub(r"[^a-z0-9_]", "_", tag.lower()), uuid.uuid4().hex[:8]]
    return "_".join(p for p in parts if p)[:63]


def _check_identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a plain lower-case SQL identifier")
    return name


def _autocommit_engine(url: str) -> Engine:
    return create_engine(normalize_url(url), isolation_level="AUTOCOMMIT", poolclass=NullPool)


def database_url(server_url: str, database: str) -> str:
    """``server_url`` with its database replaced by ``database``."""
    url = make_url(normalize_url(server_url)).set(database=database)
    return url.render_as_string(hide_password=False)


def schema_url(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema`` as their only search_path entry."""
    parsed = make_url(normalize_url(url))
    parsed = parsed.update_query_dict({"options": f"-csearch_path={_check_identifier(schema)}"})
    return parsed.render_as_string(hide_password=False)


def create_database(server_url: str, name: str) -> str:
    engine = _autocommit_engine(server_url)
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{_check_identifier(name)}"'))
    finally:
        engine.dispose()
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    engine = _autocommit_engine(server_url)
    try:
        with engine.connect() as connection:
            connection.execute(
                text(f'DROP DATABASE IF EXISTS "{_check_identifier(name)}" WITH (FORCE)')
            )
    finally:
        engine.dispose()


@contextmanager
def temporary_database(server_url: str, *, tag: str = "") -> Iterator[str]:
    """Create a fresh database next to the one ``server_url`` names; yield its URL; drop it."""
    name = scratch_name("steward_test", tag)
    url = create_database(server_url, name)
    try:
        yield url
    finally:
        drop_database(server_url, name)


@contextmanager
def temporary_schema(url: str, *, tag: str = "") -> Iterator[str]:
    """Create a fresh schema in the database ``url`` names; yield a URL that uses it; drop it."""
    name = scratch_name("s", tag)
    engine = _autocommit_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{_check_identifier(name)}"'))
        try:
            yield schema_url(url, name)
        finally:
            with engine.connect() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        engine.dispose()
