"""The API documents itself: /docs and /openapi.json are served and list every route."""

from __future__ import annotations

import re
from typing import Any

from steward import __version__


def test_docs_and_schema_are_served_without_a_token(api: Any) -> None:
    docs = api.http.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    assert "/openapi.json" in docs.text
    schema = api.http.get("/openapi.json")
    assert schema.status_code == 200
    body = schema.json()
    assert body["openapi"].startswith("3.")
    assert body["info"]["title"] == "Steward"
    assert body["info"]["version"] == __version__
    assert api.http.get("/redoc").status_code == 200


def test_every_route_is_documented(api: Any, api_routes: set[tuple[str, str]]) -> None:
    paths = api.http.get("/openapi.json").json()["paths"]
    documented = {
        (method.upper(), path.removeprefix("/api/v1"))
        for path, operations in paths.items()
        if path.startswith("/api/v1/")
        for method in operations
    }
    # the artifact route's {path:path} is documented as {path}
    served = {(m, p.replace("{path:path}", "{path}")) for m, p in api_routes}
    assert sorted(served - documented) == []
    assert sorted(documented - served) == []
    for path, operations in paths.items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), where
            assert operation.get("tags"), where
            assert operation.get("operationId"), where
            assert any(code.startswith("2") for code in operation["responses"]), where
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert names == set(_placeholders(path)), where


def test_operation_ids_are_unique(api: Any) -> None:
    paths = api.http.get("/openapi.json").json()["paths"]
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_request_bodies_are_documented_with_their_schemas(api: Any) -> None:
    schema = api.http.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    for name in ("ModelCreate", "ModelUpdate", "VersionCreate", "VersionUpdate", "AliasSet",
                 "RunCreate", "RunEnd", "LogBatch", "TokenCreate"):  # fmt: skip
        assert name in components, name
        assert components[name].get("additionalProperties") is False, name
    create = schema["paths"]["/api/v1/models"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ModelCreate")


def _placeholders(path: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", path)
