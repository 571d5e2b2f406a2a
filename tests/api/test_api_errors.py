"""Every route's failure paths leave in the one envelope, with the right status, code and field.

``CASES`` is the table: each row names the route template it exercises, and
``test_every_route_has_a_failure_case`` fails when a route under /api/v1 has no row. The fuzz
loop at the end sends garbage to every body-taking route and asserts the server never answers
with a 500.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any

import pytest

from steward.api.app import API_PREFIX

V = API_PREFIX
JSON = {"content-type": "application/json"}
BYTES = {"content-type": "application/octet-stream"}
ZERO_DIGEST = "sha256:" + "0" * 64
VV = "/models/{name}/versions/{version}"
# Routes that need the approver role even to write (viewers and developers get 403).
APPROVER_ROUTES = {
    ("POST", f"{VV}/approvals"), ("POST", f"{VV}/reproductions"), ("POST", "/policies"),
    ("PUT", "/policies/{name}"), ("PUT", "/models/{name}/policy"), ("POST", "/lifecycle/archive"),
}  # fmt: skip


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    route: str  # the route template, as in app.routes
    url: str  # may hold {run}, {digest}, ... filled from Any.ids
    status: int
    code: str
    field: str | None = None
    who: str | None = "admin"
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] | None = None


def _version_body(**changes: Any) -> dict[str, Any]:
    body = {"flavor": "sklearn", "files": {"model.skops": {"digest": "{digest}", "size": 1}}}
    return {**body, **changes}


CASES = [
    # models ------------------------------------------------------------------------------
    Case("models-bad-filter", "GET", "/models", "/models?filter=auc >> 1", 422, "invalid_input",
         "filter"),
    Case("models-metric-filter", "GET", "/models", "/models?filter=metrics.auc > 1", 422,
         "invalid_input", "filter"),
    Case("models-bad-page-token", "GET", "/models", "/models?page_token=@@@", 422,
         "invalid_input", "page_token"),
    Case("models-limit-zero", "GET", "/models", "/models?limit=0", 422, "invalid_input", "limit"),
    Case("models-limit-type", "GET", "/models", "/models?limit=ten", 422, "invalid_input",
         "limit"),
    Case("get-model-nul", "GET", "/models/{name}", "/models/a%00b", 422, "invalid_input",
         "name"),
    Case("models-nul-filter", "GET", "/models", "/models?filter=tags.a%20=%20'%00'", 422,
         "invalid_input", "filter"),
    Case("create-model-nul-tag", "POST", "/models", "/models", 422, "invalid_input", "tags",
         json={"name": "nul", "tags": {"team": "a\u0000b"}}),
    Case("create-model-null-tags", "POST", "/models", "/models", 422, "invalid_input", "tags",
         json={"name": "nul", "tags": None}),
    Case("models-no-token", "GET", "/models", "/models", 401, "unauthenticated", who=None),
    Case("create-model-malformed-json", "POST", "/models", "/models", 422, "invalid_input",
         "body", content=b'{"name": ', headers=JSON),
    Case("create-model-not-an-object", "POST", "/models", "/models", 422, "invalid_input",
         "body", json=["known"]),
    Case("create-model-no-body", "POST", "/models", "/models", 422, "invalid_input", "body"),
    Case("create-model-wrong-type", "POST", "/models", "/models", 422, "invalid_input",
         "risk_tier", json={"name": "typed", "risk_tier": "high"}),
    Case("create-model-tier-range", "POST", "/models", "/models", 422, "invalid_input",
         "risk_tier", json={"name": "typed", "risk_tier": 4}),
    Case("create-model-extra-field", "POST", "/models", "/models", 422, "invalid_input",
         "colour", json={"name": "extra", "colour": "red"}),
    Case("create-model-bad-name", "POST", "/models", "/models", 422, "invalid_input", "name",
         json={"name": "no spaces please"}),
    Case("create-model-bad-card", "POST", "/models", "/models", 422, "invalid_input", "card",
         json={"name": "carded", "card": {"poetry": "x"}}),
    Case("create-model-tag-type", "POST", "/models", "/models", 422, "invalid_input",
         "tags.team", json={"name": "tagged", "tags": {"team": 3}}),
    Case("create-model-duplicate", "POST", "/models", "/models", 409, "already_exists", "name",
         json={"name": "known"}),
    Case("create-model-viewer", "POST", "/models", "/models", 403, "permission_denied",
         who="viewer", json={"name": "viewer-made"}),
    Case("get-model-unknown", "GET", "/models/{name}", "/models/ghost", 404, "not_found", "name"),
    Case("update-model-unknown", "PATCH", "/models/{name}", "/models/ghost", 404, "not_found",
         "name", json={"team": "x"}),
    Case("update-model-extra", "PATCH", "/models/{name}", "/models/known", 422, "invalid_input",
         "name", json={"name": "renamed"}),
    Case("update-model-empty-owner", "PATCH", "/models/{name}", "/models/known", 422,
         "invalid_input", "owner", json={"owner": ""}),
    Case("update-model-null-tier", "PATCH", "/models/{name}", "/models/known", 422,
         "invalid_input", "risk_tier", json={"risk_tier": None}),
    Case("update-model-null-owner", "PATCH", "/models/{name}", "/models/known", 422,
         "invalid_input", "owner", json={"owner": None}),
    Case("update-model-viewer", "PATCH", "/models/{name}", "/models/known", 403,
         "permission_denied", who="viewer", json={"team": "x"}),
    # versions ----------------------------------------------------------------------------
    Case("versions-bad-filter", "GET", "/versions", "/versions?filter=metrics.auc > 'high'", 422,
         "invalid_input", "filter"),
    Case("versions-unknown-field", "GET", "/versions", "/versions?filter=colour = 'red'", 422,
         "invalid_input", "filter"),
    Case("versions-param-filter", "GET", "/versions", "/versions?filter=params.lr = '1'", 422,
         "invalid_input", "filter"),
    Case("versions-unknown-model", "GET", "/versions", "/versions?model=ghost", 404, "not_found",
         "name"),
    Case("versions-bad-page-token", "GET", "/versions", "/versions?page_token=bm90LWFuLWludA==",
         422, "invalid_input", "page_token"),
    Case("create-version-unknown-model", "POST", "/models/{name}/versions",
         "/models/ghost/versions", 404, "not_found", "name", json=_version_body()),
    Case("create-version-no-files", "POST", "/models/{name}/versions", "/models/known/versions",
         422, "invalid_input", "files", json=_version_body(files={})),
    Case("create-version-bad-flavor", "POST", "/models/{name}/versions",
         "/models/known/versions", 422, "invalid_input", "flavor",
         json=_version_body(flavor="tensorflow")),
    Case("create-version-metric-text", "POST", "/models/{name}/versions",
         "/models/known/versions", 422, "invalid_input", "metrics.auc",
         json=_version_body(metrics={"auc": "high"})),
    Case("create-version-not-uploaded", "POST", "/models/{name}/versions",
         "/models/known/versions", 422, "invalid_input", "files.model.skops",
         json=_version_body(files={"model.skops": {"digest": ZERO_DIGEST, "size": 1}})),
    Case("create-version-wrong-content", "POST", "/models/{name}/versions",
         "/models/known/versions", 422, "invalid_input", "artifact",
         json=_version_body(flavor="onnx", files={"model.onnx": {"digest": "{digest}",
                                                                 "size": 1}})),
    Case("create-version-bad-primary", "POST", "/models/{name}/versions",
         "/models/known/versions", 422, "invalid_input", "primary_file",
         json=_version_body(primary_file="missing.skops")),
    Case("create-version-viewer", "POST", "/models/{name}/versions", "/models/known/versions",
         403, "permission_denied", who="viewer", json=_version_body()),
    Case("get-version-unknown", "GET", "/models/{name}/versions/{version}",
         "/models/known/versions/99", 404, "not_found", "version"),
    Case("get-version-unknown-model", "GET", "/models/{name}/versions/{version}",
         "/models/ghost/versions/1", 404, "not_found", "name"),
    Case("get-version-not-a-number", "GET", "/models/{name}/versions/{version}",
         "/models/known/versions/one", 422, "invalid_input", "version"),
    Case("get-version-too-big", "GET", "/models/{name}/versions/{version}",
         "/models/known/versions/99999999999999999999", 422, "invalid_input", "version"),
    Case("update-version-unknown", "PATCH", "/models/{name}/versions/{version}",
         "/models/known/versions/99", 404, "not_found", "version", json={"description": "x"}),
    Case("update-version-not-a-number", "PATCH", "/models/{name}/versions/{version}",
         "/models/known/versions/one", 422, "invalid_input", "version", json={}),
    Case("update-version-overflow", "PATCH", "/models/{name}/versions/{version}",
         "/models/known/versions/2147483648", 422, "invalid_input", "version", json={}),
    Case("update-version-metric-bool", "PATCH", "/models/{name}/versions/{version}",
         "/models/known/versions/1", 422, "invalid_input", "metrics.auc",
         json={"metrics": {"auc": True}}),
    Case("update-version-tags-type", "PATCH", "/models/{name}/versions/{version}",
         "/models/known/versions/1", 422, "invalid_input", "tags", json={"tags": ["a"]}),
    Case("resolve-bad-uri", "GET", "/resolve", "/resolve?uri=known:1", 422, "invalid_input",
         "uri"),
    Case("resolve-missing-uri", "GET", "/resolve", "/resolve", 422, "invalid_input", "uri"),
    Case("resolve-bad-version", "GET", "/resolve", "/resolve?uri=models:/known/0", 422,
         "invalid_input", "uri"),
    Case("resolve-version-overflow", "GET", "/resolve",
         "/resolve?uri=models:/known/99999999999999999999", 422, "invalid_input", "version"),
    Case("resolve-unknown-alias", "GET", "/resolve", "/resolve?uri=models:/known@staging", 404,
         "not_found", "alias"),
    Case("resolve-unknown-model", "GET", "/resolve", "/resolve?uri=models:/ghost/1", 404,
         "not_found", "name"),
    # aliases and cards -------------------------------------------------------------------
    Case("set-alias-bad-name", "PUT", "/models/{name}/aliases/{alias}",
         "/models/known/aliases/Champion!", 422, "invalid_input", "alias", json={"version": 1}),
    Case("set-alias-reserved", "PUT", "/models/{name}/aliases/{alias}",
         "/models/known/aliases/latest", 422, "invalid_input", "alias", json={"version": 1}),
    Case("set-alias-version-type", "PUT", "/models/{name}/aliases/{alias}",
         "/models/known/aliases/champion", 422, "invalid_input", "version",
         json={"version": "one"}),
    Case("set-alias-version-zero", "PUT", "/models/{name}/aliases/{alias}",
         "/models/known/aliases/champion", 422, "invalid_input", "version", json={"version": 0}),
    Case("set-alias-version-overflow", "PUT", "/models/{name}/aliases/{alias}",
         "/models/known/aliases/champion", 422, "invalid_input", "version",
         json={"version": 2**31}),
    Case("set-alias-malformed", "PUT", "/models/{name}/aliases/{alias}",
         "/models/known/aliases/champion", 422, "invalid_input", "body", content=b"{",
         headers=JSON),
    Case("set-alias-unknown-version", "PUT", "/models/{name}/aliases/{alias}",
         "/models/known/aliases/champion", 404, "not_found", "version", json={"version": 42}),
    Case("set-alias-unknown-model", "PUT", "/models/{name}/aliases/{alias}",
         "/models/ghost/aliases/champion", 404, "not_found", "name", json={"version": 1}),
    Case("set-alias-viewer", "PUT", "/models/{name}/aliases/{alias}",
         "/models/known/aliases/champion", 403, "permission_denied", who="viewer",
         json={"version": 1}),
    Case("delete-alias-unknown", "DELETE", "/models/{name}/aliases/{alias}",
         "/models/known/aliases/staging", 404, "not_found", "alias"),
    Case("delete-alias-unknown-model", "DELETE", "/models/{name}/aliases/{alias}",
         "/models/ghost/aliases/champion", 404, "not_found", "name"),
    Case("delete-alias-viewer", "DELETE", "/models/{name}/aliases/{alias}",
         "/models/known/aliases/champion", 403, "permission_denied", who="viewer"),
    Case("card-bad-uri", "GET", "/card", "/card?uri=models:/known", 422, "invalid_input", "uri"),
    Case("card-unknown-version", "GET", "/card", "/card?uri=models:/known/7", 404, "not_found",
         "version"),
    # release gates -----------------------------------------------------------------------
    Case("evaluate-bad-digest", "POST", f"{VV}/evaluations", "/models/known/versions/1/evaluations",
         422, "invalid_input", "data_digest", json={"data_digest": "md5:x", "label": "y"}),
    Case("evaluate-not-parquet", "POST", f"{VV}/evaluations",
         "/models/known/versions/1/evaluations", 422, "invalid_input", "data",
         json={"data_digest": "{digest}", "label": "y"}),
    Case("evaluate-negative-resamples", "POST", f"{VV}/evaluations",
         "/models/known/versions/1/evaluations", 422, "invalid_input", "resamples",
         json={"data_digest": "{digest}", "label": "y", "resamples": -1}),
    Case("evaluate-unknown-version", "POST", f"{VV}/evaluations",
         "/models/known/versions/99/evaluations", 404, "not_found", "version",
         json={"data_digest": "{digest}", "label": "y"}),
    Case("evaluate-viewer", "POST", f"{VV}/evaluations", "/models/known/versions/1/evaluations",
         403, "permission_denied", who="viewer", json={"data_digest": "{digest}", "label": "y"}),
    Case("evaluations-unknown-model", "GET", f"{VV}/evaluations",
         "/models/ghost/versions/1/evaluations", 404, "not_found", "name"),
    Case("evaluations-bad-version", "GET", f"{VV}/evaluations",
         "/models/known/versions/zero/evaluations", 422, "invalid_input", "version"),
    Case("gate-bad-policy", "POST", f"{VV}/gate", "/models/known/versions/1/gate", 422,
         "invalid_input", "policy", json={"policy": "name: x\nchecks: [\n"}),
    Case("gate-extra-field", "POST", f"{VV}/gate", "/models/known/versions/1/gate", 422,
         "invalid_input", "policies", json={"policies": "x"}),
    Case("gate-viewer", "POST", f"{VV}/gate", "/models/known/versions/1/gate", 403,
         "permission_denied", who="viewer"),
    Case("gate-report-unknown-version", "GET", f"{VV}/gate", "/models/known/versions/99/gate",
         404, "not_found", "version"),
    Case("gate-report-bad-format", "GET", f"{VV}/gate",
         "/models/known/versions/1/gate?format=pdf", 422, "invalid_input", "format"),
    Case("approve-developer", "POST", f"{VV}/approvals", "/models/known/versions/1/approvals",
         403, "permission_denied", who="developer", json={}),
    Case("approve-not-gated", "POST", f"{VV}/approvals", "/models/known/versions/1/approvals",
         409, "gate_failed", "status", who="approver", json={"comment": "ok"}),
    Case("approve-long-comment", "POST", f"{VV}/approvals", "/models/known/versions/1/approvals",
         422, "invalid_input", "comment", json={"comment": "x" * 5001}),
    Case("approvals-unknown-model", "GET", f"{VV}/approvals",
         "/models/ghost/versions/1/approvals", 404, "not_found", "name"),
    Case("transition-bad-status", "POST", f"{VV}/transitions",
         "/models/known/versions/1/transitions", 422, "invalid_input", "to",
         json={"to": "launched"}),
    Case("transition-no-gate", "POST", f"{VV}/transitions",
         "/models/known/versions/1/transitions", 409, "gate_failed", "to", who="approver",
         json={"to": "staging"}),
    Case("transition-production-developer", "POST", f"{VV}/transitions",
         "/models/known/versions/1/transitions", 403, "permission_denied", who="developer",
         json={"to": "production"}),
    Case("deploy-missing-champion", "PUT", "/deployments/{name}", "/deployments/api", 422,
         "invalid_input", "champion", json={"model": "known"}),
    Case("deploy-canary-no-share", "PUT", "/deployments/{name}", "/deployments/api", 422,
         "invalid_input", "canary_share", json={"model": "known", "champion": 1, "canary": 2}),
    Case("deploy-slo-without-canary", "PUT", "/deployments/{name}", "/deployments/api", 422,
         "invalid_input", "canary_slo",
         json={"model": "known", "champion": 1, "canary_slo": {"max_error_rate": 0.1}}),
    Case("deploy-slo-with-split", "PUT", "/deployments/{name}", "/deployments/api", 422,
         "invalid_input", "canary_slo",
         json={"model": "known", "champion": 1, "split": {"1": 1, "2": 1}, "unit_key": "u",
               "canary_slo": {"max_p95_ms": 50}}),
    Case("deploy-slo-no-limit", "PUT", "/deployments/{name}", "/deployments/api", 422,
         "invalid_input", "canary_slo",
         json={"model": "known", "champion": 1, "canary": 2, "canary_share": 0.1,
               "canary_slo": {"window_s": 60}}),
    Case("deploy-slo-bad-rate", "PUT", "/deployments/{name}", "/deployments/api", 422,
         "invalid_input", "canary_slo.max_error_rate",
         json={"model": "known", "champion": 1, "canary": 2, "canary_share": 0.1,
               "canary_slo": {"max_error_rate": 1.5}}),
    Case("deploy-slo-bad-window", "PUT", "/deployments/{name}", "/deployments/api", 422,
         "invalid_input", "canary_slo.window_s",
         json={"model": "known", "champion": 1, "canary": 2, "canary_share": 0.1,
               "canary_slo": {"max_p95_ms": 50, "window_s": "a minute"}}),
    Case("deploy-unknown-model", "PUT", "/deployments/{name}", "/deployments/api", 404,
         "not_found", "name", json={"model": "ghost", "champion": 1}),
    Case("deploy-registered-champion", "PUT", "/deployments/{name}", "/deployments/api", 409,
         "gate_failed", "champion", json={"model": "known", "champion": 1}),
    Case("deploy-viewer", "PUT", "/deployments/{name}", "/deployments/api", 403,
         "permission_denied", who="viewer", json={"model": "known", "champion": 1}),
    Case("deploy-bad-name", "PUT", "/deployments/{name}", "/deployments/-bad", 422,
         "invalid_input", "name", json={"model": "known", "champion": 1}),
    Case("deployments-no-token", "GET", "/deployments", "/deployments", 401, "unauthenticated",
         who=None),
    Case("get-deployment-unknown", "GET", "/deployments/{name}", "/deployments/ghost", 404,
         "not_found", "name"),
    Case("rollback-unknown", "POST", "/deployments/{name}/rollback", "/deployments/ghost/rollback",
         404, "not_found", "name", json={}),
    Case("rollback-extra", "POST", "/deployments/{name}/rollback", "/deployments/ghost/rollback",
         422, "invalid_input", "force", json={"force": True}),
    Case("labels-unknown-deployment", "POST", "/deployments/{name}/labels",
         "/deployments/ghost/labels", 404, "not_found", "name",
         json={"labels": [{"request_id": "r1", "label": 1}]}),
    Case("labels-nan", "POST", "/deployments/{name}/labels", "/deployments/ghost/labels", 422,
         "invalid_input", "labels.0.label", headers=JSON,
         content=b'{"labels": [{"request_id": "r1", "label": NaN}]}'),
    Case("labels-bad-parquet", "POST", "/deployments/{name}/labels", "/deployments/ghost/labels",
         422, "invalid_input", "body", content=b"PAR1 not really",
         headers={"content-type": "application/vnd.apache.parquet"}),
    Case("labels-viewer", "POST", "/deployments/{name}/labels", "/deployments/ghost/labels", 403,
         "permission_denied", who="viewer", json={"labels": [{"request_id": "r1", "label": 1}]}),
    Case("review-negative-days", "GET", "/lifecycle/review", "/lifecycle/review?staging_days=-1",
         422, "invalid_input", "staging_days"),
    Case("archive-developer", "POST", "/lifecycle/archive", "/lifecycle/archive", 403,
         "permission_denied", who="developer"),
    Case("archive-huge-days", "POST", "/lifecycle/archive",
         "/lifecycle/archive?archive_after_days=99999999", 422, "invalid_input",
         "archive_after_days"),
    Case("history-bad-at", "GET", "/models/{name}/history", "/models/known/history?at=yesterday",
         422, "invalid_input", "at"),
    Case("history-naive-at", "GET", "/models/{name}/history",
         "/models/known/history?at=2024-01-01T00:00:00", 422, "invalid_input", "at"),
    Case("history-unknown-model", "GET", "/models/{name}/history", "/models/ghost/history", 404,
         "not_found", "name"),
    Case("reproduction-developer", "POST", f"{VV}/reproductions",
         "/models/known/versions/1/reproductions", 403, "permission_denied", who="developer",
         json={"matched": True, "tolerance": 0, "detail": "d"}),
    Case("reproduction-bad-tolerance", "POST", f"{VV}/reproductions",
         "/models/known/versions/1/reproductions", 422, "invalid_input", "tolerance",
         json={"matched": True, "tolerance": -1, "detail": "d"}),
    Case("reproduction-metric-text", "POST", f"{VV}/reproductions",
         "/models/known/versions/1/reproductions", 422, "invalid_input", "recorded.auc",
         json={"matched": True, "tolerance": 0, "detail": "d", "recorded": {"auc": "x"}}),
    Case("policies-no-token", "GET", "/policies", "/policies", 401, "unauthenticated", who=None),
    Case("create-policy-bad-yaml", "POST", "/policies", "/policies", 422, "invalid_input",
         "policy", json={"text": "name: x\nchecks:\n  - check: metric_flor\n"}),
    Case("create-policy-developer", "POST", "/policies", "/policies", 403, "permission_denied",
         who="developer", json={"text": "name: x"}),
    Case("create-policy-unknown-model", "POST", "/policies", "/policies", 404, "not_found",
         "name", json={"text": "name: x\nchecks:\n  - check: approvals\n", "model": "ghost"}),
    Case("get-policy-unknown", "GET", "/policies/{name}", "/policies/ghost", 404, "not_found",
         "name"),
    Case("get-policy-bad-revision", "GET", "/policies/{name}", "/policies/tier-1?revision=0",
         422, "invalid_input", "revision"),
    Case("put-policy-other-name", "PUT", "/policies/{name}", "/policies/other", 422,
         "invalid_input", "name", json={"text": "name: x\nchecks:\n  - check: approvals\n"}),
    Case("model-policy-unknown-model", "GET", "/models/{name}/policy", "/models/ghost/policy",
         404, "not_found", "name"),
    Case("assign-policy-unknown", "PUT", "/models/{name}/policy", "/models/known/policy", 404,
         "not_found", "policy", json={"policy": "ghost"}),
    Case("assign-policy-missing", "PUT", "/models/{name}/policy", "/models/known/policy", 422,
         "invalid_input", "policy", json={}),
    # alerts and incidents ----------------------------------------------------------------
    Case("alerts-bad-state", "GET", "/alerts", "/alerts?state=burning", 422, "invalid_input",
         "state"),
    Case("incidents-zero-limit", "GET", "/incidents", "/incidents?limit=0", 422,
         "invalid_input", "limit"),
    Case("incident-unknown", "GET", "/incidents/{incident_id}", "/incidents/999", 404,
         "not_found", "incident_id"),
    Case("timeline-zero-id", "GET", "/incidents/{incident_id}/timeline", "/incidents/0/timeline",
         422, "invalid_input", "incident_id"),
    Case("note-empty", "POST", "/incidents/{incident_id}/notes", "/incidents/999/notes", 422,
         "invalid_input", "text", json={"text": ""}),
    Case("mitigate-unknown-action", "POST", "/incidents/{incident_id}/mitigate",
         "/incidents/999/mitigate", 422, "invalid_input", "action", json={"action": "reboot"}),
    Case("resolve-unknown", "POST", "/incidents/{incident_id}/resolve", "/incidents/999/resolve",
         404, "not_found", "incident_id", json={}),
    Case("postmortem-bad-section", "PUT", "/incidents/{incident_id}/postmortem",
         "/incidents/999/postmortem", 422, "invalid_input", "sections.lessons",
         json={"sections": {"lessons": "x"}}),
    Case("postmortem-unknown", "GET", "/incidents/{incident_id}/postmortem",
         "/incidents/999/postmortem", 404, "not_found", "incident_id"),
    # monitors ----------------------------------------------------------------------------
    Case("monitor-put-bad-share", "PUT", "/monitors/{deployment}", "/monitors/ghost", 422,
         "invalid_input", "drift_share", json={"drift_share": 2}),
    Case("monitor-put-unknown", "PUT", "/monitors/{deployment}", "/monitors/ghost", 404,
         "not_found", json={}),
    Case("monitor-get-unknown", "GET", "/monitors/{deployment}", "/monitors/ghost", 404,
         "not_found"),
    Case("monitor-windows-limit", "GET", "/monitors/{deployment}/windows",
         "/monitors/ghost/windows?limit=0", 422, "invalid_input", "limit"),
    Case("monitor-report-unknown", "GET", "/monitors/{deployment}/report.html",
         "/monitors/ghost/report.html", 404, "not_found"),
    Case("monitor-run-bad-window", "POST", "/monitors/run", "/monitors/run", 422,
         "invalid_input", "window", json={"window": "soon"}),
    Case("monitor-run-unknown", "POST", "/monitors/run", "/monitors/run", 404, "not_found",
         json={"deployments": ["ghost"]}),
    Case("monitor-run-viewer", "POST", "/monitors/run", "/monitors/run", 403,
         "permission_denied", who="viewer", json={}),
    # experiments -------------------------------------------------------------------------
    Case("metric-bad-source", "PUT", "/metrics/{name}", "/metrics/revenue", 422,
         "invalid_input", "source", json={"source": "telepathy"}),
    Case("metric-outcome-without-event", "PUT", "/metrics/{name}", "/metrics/revenue", 422,
         "invalid_input", "event", json={"source": "outcome"}),
    Case("metric-bad-name", "PUT", "/metrics/{name}", "/metrics/no%20spaces", 422,
         "invalid_input", "name", json={"source": "latency"}),
    Case("metric-viewer", "PUT", "/metrics/{name}", "/metrics/revenue", 403,
         "permission_denied", who="viewer", json={"source": "latency"}),
    Case("metrics-no-token", "GET", "/metrics", "/metrics", 401, "unauthenticated", who=None),
    Case("experiment-unknown-deployment", "POST", "/experiments", "/experiments", 404,
         "not_found", "deployment",
         json={"name": "e", "deployment": "ghost",
               "metrics": [{"metric": "m", "role": "primary"}]}),
    Case("experiment-two-primaries", "POST", "/experiments", "/experiments", 422,
         "invalid_input", "metrics",
         json={"name": "e", "deployment": "ghost",
               "metrics": [{"metric": "a", "role": "primary"},
                           {"metric": "b", "role": "primary"}]}),
    Case("experiment-naive-start", "POST", "/experiments", "/experiments", 422,
         "invalid_input", "start",
         json={"name": "e", "deployment": "ghost", "metrics": [{"metric": "m", "role": "primary"}],
               "start": "2026-01-01T00:00:00"}),
    Case("experiment-viewer", "POST", "/experiments", "/experiments", 403, "permission_denied",
         who="viewer", json={}),
    Case("experiments-bad-state", "GET", "/experiments", "/experiments?state=paused", 422,
         "invalid_input", "state"),
    Case("experiment-unknown", "GET", "/experiments/{name}", "/experiments/ghost", 404,
         "not_found", "name"),
    Case("analysis-unknown", "POST", "/experiments/{name}/analysis",
         "/experiments/ghost/analysis", 404, "not_found", "name"),
    Case("analysis-bad-format", "POST", "/experiments/{name}/analysis",
         "/experiments/ghost/analysis?format=pdf", 422, "invalid_input", "format"),
    Case("analysis-viewer", "POST", "/experiments/{name}/analysis",
         "/experiments/ghost/analysis", 403, "permission_denied", who="viewer"),
    Case("decision-unknown", "POST", "/experiments/{name}/decision",
         "/experiments/ghost/decision", 404, "not_found", "name",
         json={"action": "iterate", "reason": "r"}),
    Case("decision-no-reason", "POST", "/experiments/{name}/decision",
         "/experiments/ghost/decision", 422, "invalid_input", "reason", json={"action": "ship"}),
    Case("decision-bad-action", "POST", "/experiments/{name}/decision",
         "/experiments/ghost/decision", 422, "invalid_input", "action",
         json={"action": "launch", "reason": "r"}),
    Case("decision-apply-ship-developer", "POST", "/experiments/{name}/decision",
         "/experiments/ghost/decision", 403, "permission_denied", who="developer",
         json={"action": "ship", "reason": "r", "apply": True}),
    Case("decision-viewer", "POST", "/experiments/{name}/decision",
         "/experiments/ghost/decision", 403, "permission_denied", who="viewer",
         json={"action": "iterate", "reason": "r"}),
    Case("outcomes-nan", "POST", "/outcomes", "/outcomes", 422, "invalid_input",
         "outcomes.0.value", headers=JSON,
         content=b'{"outcomes": [{"name": "purchase", "value": NaN, "unit_id": "u1"}]}'),
    Case("outcomes-both-keys", "POST", "/outcomes", "/outcomes", 422, "invalid_input",
         "outcomes.0.unit_id",
         json={"outcomes": [{"name": "p", "value": 1, "unit_id": "u", "request_id": "r"}]}),
    Case("outcomes-empty", "POST", "/outcomes", "/outcomes", 422, "invalid_input", "outcomes",
         json={"outcomes": []}),
    Case("outcomes-bad-parquet", "POST", "/outcomes", "/outcomes", 422, "invalid_input", "body",
         content=b"PAR1 not really", headers={"content-type": "application/vnd.apache.parquet"}),
    Case("outcomes-xml", "POST", "/outcomes", "/outcomes", 415, "unsupported_media_type",
         content=b"<outcomes/>", headers={"content-type": "application/xml"}),
    Case("outcomes-viewer", "POST", "/outcomes", "/outcomes", 403, "permission_denied",
         who="viewer", json={"outcomes": [{"name": "p", "value": 1, "unit_id": "u"}]}),
    # artifacts ---------------------------------------------------------------------------
    Case("upload-viewer", "POST", "/artifacts", "/artifacts", 403, "permission_denied",
         who="viewer", content=b"x", headers=BYTES),
    Case("upload-no-token", "POST", "/artifacts", "/artifacts", 401, "unauthenticated", who=None,
         content=b"x", headers=BYTES),
    Case("download-bad-digest", "GET", "/artifacts/{digest}", "/artifacts/md5:abc", 422,
         "invalid_input", "digest"),
    Case("download-unknown", "GET", "/artifacts/{digest}", f"/artifacts/{ZERO_DIGEST}", 404,
         "not_found", "digest"),
    # runs --------------------------------------------------------------------------------
    Case("create-run-extra", "POST", "/runs", "/runs", 422, "invalid_input", "owner",
         json={"name": "r", "owner": "me"}),
    Case("create-run-params-type", "POST", "/runs", "/runs", 422, "invalid_input", "params",
         json={"params": ["lr", 1]}),
    Case("create-run-empty-project", "POST", "/runs", "/runs", 422, "invalid_input", "project",
         json={"project": ""}),
    Case("create-run-viewer", "POST", "/runs", "/runs", 403, "permission_denied", who="viewer",
         json={}),
    Case("runs-bad-filter", "GET", "/runs", "/runs?filter=tags.x = 'y'", 422, "invalid_input",
         "filter"),
    Case("runs-bad-page-token", "GET", "/runs", "/runs?page_token=LTU=", 422, "invalid_input",
         "page_token"),
    Case("get-run-unknown", "GET", "/runs/{run_id}", "/runs/ghost", 404, "not_found", "run_id"),
    Case("end-run-unknown", "POST", "/runs/{run_id}/end", "/runs/ghost/end", 404, "not_found",
         "run_id", json={}),
    Case("end-run-bad-status", "POST", "/runs/{run_id}/end", "/runs/{run}/end", 422,
         "invalid_input", "status", json={"status": "exploded"}),
    Case("batch-unknown-run", "POST", "/runs/{run_id}/batch", "/runs/ghost/batch", 404,
         "not_found", "run_id", json={"metrics": [{"key": "loss", "value": 1.0}]}),
    Case("batch-value-text", "POST", "/runs/{run_id}/batch", "/runs/{run}/batch", 422,
         "invalid_input", "metrics.0.value", json={"metrics": [{"key": "loss", "value": "1"}]}),
    Case("batch-step-negative", "POST", "/runs/{run_id}/batch", "/runs/{run}/batch", 422,
         "invalid_input", "metrics.0.step",
         json={"metrics": [{"key": "loss", "value": 1.0, "step": -1}]}),
    Case("batch-step-overflow", "POST", "/runs/{run_id}/batch", "/runs/{run}/batch", 422,
         "invalid_input", "metrics.0.step",
         json={"metrics": [{"key": "loss", "value": 1.0, "step": 2**64}]}),
    Case("batch-naive-timestamp", "POST", "/runs/{run_id}/batch", "/runs/{run}/batch", 422,
         "invalid_input", "metrics.0.timestamp",
         json={"metrics": [{"key": "loss", "value": 1.0, "timestamp": "2024-01-01T00:00:00"}]}),
    Case("batch-columns-short", "POST", "/runs/{run_id}/batch", "/runs/{run}/batch", 422,
         "invalid_input", "metric_columns.step",
         json={"metric_columns": {"key": ["a", "b"], "value": [1.0, 2.0], "step": [1]}}),
    Case("batch-columns-nan", "POST", "/runs/{run_id}/batch", "/runs/{run}/batch", 422,
         "invalid_input", "metric_columns.value.1",
         content=b'{"metric_columns": {"key": ["a", "b"], "value": [1.0, NaN]}}',
         headers={"content-type": "application/json"}),
    Case("batch-columns-nul-key", "POST", "/runs/{run_id}/batch", "/runs/{run}/batch", 422,
         "invalid_input", "metric_columns.key.1",
         json={"metric_columns": {"key": ["a", "b\x00"], "value": [1.0, 2.0]}}),
    Case("batch-columns-unknown", "POST", "/runs/{run_id}/batch", "/runs/{run}/batch", 422,
         "invalid_input", "metric_columns.unit",
         json={"metric_columns": {"key": ["a"], "value": [1.0], "unit": ["s"]}}),
    Case("batch-param-changed", "POST", "/runs/{run_id}/batch", "/runs/{run}/batch", 409,
         "conflict", "params.lr", json={"params": {"lr": "0.2"}}),
    Case("metric-history-unknown-run", "GET", "/runs/{run_id}/metrics/{key}",
         "/runs/ghost/metrics/loss", 404, "not_found", "run_id"),
    Case("run-artifact-escape", "PUT", "/runs/{run_id}/artifacts/{path:path}",
         "/runs/{run}/artifacts/%2E%2E%2Fx", 422, "invalid_input", "path", content=b"x",
         headers=BYTES),
    Case("run-artifact-absolute", "PUT", "/runs/{run_id}/artifacts/{path:path}",
         "/runs/{run}/artifacts//etc/passwd", 422, "invalid_input", "path", content=b"x",
         headers=BYTES),
    Case("run-artifact-unknown-run", "PUT", "/runs/{run_id}/artifacts/{path:path}",
         "/runs/ghost/artifacts/a.txt", 404, "not_found", "run_id", content=b"x", headers=BYTES),
    Case("run-artifact-viewer", "PUT", "/runs/{run_id}/artifacts/{path:path}",
         "/runs/{run}/artifacts/a.txt", 403, "permission_denied", who="viewer", content=b"x",
         headers=BYTES),
    # ledger ------------------------------------------------------------------------------
    Case("events-bad-page-token", "GET", "/events", "/events?page_token=%%%", 422,
         "invalid_input", "page_token"),
    Case("events-bad-since", "GET", "/events", "/events?since=yesterday", 422, "invalid_input",
         "since"),
    Case("events-negative-after", "GET", "/events", "/events?after_seq=-1", 422, "invalid_input",
         "after_seq"),
    Case("events-huge-after", "GET", "/events", "/events?after_seq=99999999999999999999", 422,
         "invalid_input", "after_seq"),
    Case("events-limit-too-big", "GET", "/events", "/events?limit=10001", 422, "invalid_input",
         "limit"),
    Case("events-no-token", "GET", "/events", "/events", 401, "unauthenticated", who=None),
    Case("verify-no-token", "GET", "/audit/verify", "/audit/verify", 401, "unauthenticated",
         who=None),
    Case("verify-garbage-token", "GET", "/audit/verify", "/audit/verify", 401,
         "unauthenticated", who="garbage"),
    # tokens ------------------------------------------------------------------------------
    Case("whoami-no-token", "GET", "/whoami", "/whoami", 401, "unauthenticated", who=None),
    Case("whoami-garbage", "GET", "/whoami", "/whoami", 401, "unauthenticated", who="garbage"),
    Case("whoami-not-bearer", "GET", "/whoami", "/whoami", 401, "unauthenticated", who="basic"),
    Case("whoami-expired", "GET", "/whoami", "/whoami", 401, "unauthenticated", who="expired"),
    Case("whoami-revoked", "GET", "/whoami", "/whoami", 401, "unauthenticated", who="revoked"),
    Case("create-token-developer", "POST", "/tokens", "/tokens", 403, "permission_denied",
         who="developer", json={"name": "x", "role": "admin"}),
    Case("create-token-approver", "POST", "/tokens", "/tokens", 403, "permission_denied",
         who="approver", json={"name": "x", "role": "viewer"}),
    Case("create-token-bad-role", "POST", "/tokens", "/tokens", 422, "invalid_input", "role",
         json={"name": "x", "role": "root"}),
    Case("create-token-bad-expiry", "POST", "/tokens", "/tokens", 422, "invalid_input",
         "expires_in_days", json={"name": "x", "role": "viewer", "expires_in_days": 0}),
    Case("create-token-expiry-overflow", "POST", "/tokens", "/tokens", 422, "invalid_input",
         "expires_in_days", json={"name": "x", "role": "viewer", "expires_in_days": 2**63}),
    Case("create-token-extra", "POST", "/tokens", "/tokens", 422, "invalid_input", "secret",
         json={"name": "x", "role": "viewer", "secret": "mine"}),
    Case("list-tokens-developer", "GET", "/tokens", "/tokens", 403, "permission_denied",
         who="developer"),
    Case("list-tokens-expired", "GET", "/tokens", "/tokens", 401, "unauthenticated",
         who="expired"),
    Case("revoke-token-unknown", "DELETE", "/tokens/{token_id}", "/tokens/ghost", 404,
         "not_found", "token_id"),
    Case("revoke-token-developer", "DELETE", "/tokens/{token_id}", "/tokens/{revoked_token}",
         403, "permission_denied", who="developer"),
    Case("revoke-token-revoked-caller", "DELETE", "/tokens/{token_id}",
         "/tokens/{revoked_token}", 401, "unauthenticated", who="revoked"),
]  # fmt: skip


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: ids.get(m[1], m[0]), value)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def assert_envelope(response: Any, status: int, code: str, field: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str), error
    assert error["message"].strip(), error
    assert isinstance(error["details"], dict), error
    if field is not None:
        assert error["details"].get("field") == field, error
    return error


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_failure_path_envelope(api: Any, case: Case) -> None:
    headers = {**api.headers(case.who), **(case.headers or {})}
    kwargs: dict[str, Any] = {"headers": headers}
    if case.json is not None:
        kwargs["json"] = _fill(case.json, api.ids)
    if case.content is not None:
        kwargs["content"] = case.content
    response = api.http.request(case.method, V + _fill(case.url, api.ids), **kwargs)
    assert_envelope(response, case.status, case.code, case.field)


def test_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


def test_every_route_has_a_failure_case(api_routes: set[tuple[str, str]]) -> None:
    routes = api_routes
    covered = {(c.method, c.route) for c in CASES}
    assert routes, "no routes found under /api/v1"
    assert sorted(routes - covered) == [], "routes without a failure-path case"
    assert sorted(covered - routes) == [], "cases naming a route that does not exist"


def _dummy_url(path: str, api: Any) -> str:
    values = {
        "name": "known", "version": "1", "alias": "champion", "digest": api.ids["digest"],
        "run_id": api.ids["run"], "key": "loss", "path": "a.txt", "token_id": "ghost",
        "incident_id": "1", "deployment": "ghost",
    }  # fmt: skip
    return V + re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values[m[1]], path)


def test_every_route_needs_a_token(api: Any, api_routes: set[tuple[str, str]]) -> None:
    for method, path in sorted(api_routes):
        for who in (None, "garbage", "expired", "revoked"):
            response = api.http.request(method, _dummy_url(path, api), headers=api.headers(who))
            error = assert_envelope(response, 401, "unauthenticated", None)
            assert "token" in error["message"].lower(), (method, path, who)


def test_viewers_cannot_write_and_only_admins_manage_tokens(
    api: Any, api_routes: set[tuple[str, str]]
) -> None:
    for method, path in sorted(api_routes):
        url = _dummy_url(path, api)
        if path.startswith("/tokens"):
            for who in ("viewer", "developer", "approver"):
                response = api.http.request(method, url, headers=api.headers(who))
                error = assert_envelope(response, 403, "permission_denied", None)
                assert error["details"] == {"needed": "admin", "role": who}
        elif (method, path) in APPROVER_ROUTES:
            for who in ("viewer", "developer"):
                response = api.http.request(method, url, headers=api.headers(who), json={})
                error = assert_envelope(response, 403, "permission_denied", None)
                assert error["details"] == {"needed": "approver", "role": who}
        elif method != "GET":
            response = api.http.request(method, url, headers=api.headers("viewer"), json={})
            error = assert_envelope(response, 403, "permission_denied", None)
            assert error["details"]["needed"] == "developer"
            assert "developer role" in error["message"]


def test_nul_in_any_path_parameter_is_invalid_input(
    api: Any, api_routes: set[tuple[str, str]]
) -> None:
    for method, path in sorted(api_routes):
        for name in re.findall(r"\{(\w+)(?::\w+)?\}", path):
            url = re.sub(r"\{" + name + r"(?::\w+)?\}", "a%00b", path)
            url = _dummy_url(url, api)
            response = api.http.request(method, url, headers=api.headers("admin"), json={})
            assert_envelope(response, 422, "invalid_input", name)


def test_unknown_route_and_method_use_the_envelope(api: Any) -> None:
    headers = api.headers("admin")
    for url in (f"{V}/nothing-here", "/api/v2/models", "/nope"):
        assert_envelope(api.http.get(url, headers=headers), 404, "not_found", None)
    assert_envelope(api.http.delete(f"{V}/models", headers=headers), 405, "method_not_allowed",
                    None)  # fmt: skip


def test_validation_envelope_lists_every_problem(api: Any) -> None:
    body = {"name": "bad name", "risk_tier": 9, "colour": "red"}
    response = api.http.post(f"{V}/models", json=body, headers=api.headers("admin"))
    error = assert_envelope(response, 422, "invalid_input", None)
    fields = {p["field"] for p in error["details"]["problems"]}
    assert {"risk_tier", "colour"} <= fields
    assert "more problem" in error["message"]


# 413 -------------------------------------------------------------------------------------
def test_oversize_artifact_is_413(small_api: Any) -> None:
    headers = {**small_api.headers("developer"), **BYTES}
    small = small_api.http.post(f"{V}/artifacts", content=b"x" * 1024, headers=headers)
    assert small.status_code == 201, small.text
    response = small_api.http.post(f"{V}/artifacts", content=b"x" * 1025, headers=headers)
    error = assert_envelope(response, 413, "payload_too_large", "artifact")
    assert "1024" in error["message"]


def test_oversize_streamed_artifact_is_413(small_api: Any) -> None:
    def chunks() -> Any:  # no content-length: the server counts while it reads
        for _ in range(8):
            yield b"y" * 512

    headers = {**small_api.headers("developer"), **BYTES}
    response = small_api.http.post(f"{V}/artifacts", content=chunks(), headers=headers)
    assert_envelope(response, 413, "payload_too_large", "artifact")


def test_oversize_run_artifact_is_413(small_api: Any) -> None:
    url = f"{V}/runs/{small_api.ids['run']}/artifacts/big.bin"
    headers = {**small_api.headers("developer"), **BYTES}
    response = small_api.http.put(url, content=b"z" * 4096, headers=headers)
    assert_envelope(response, 413, "payload_too_large", "artifact")


# out-of-range values stop at validation, never at the driver --------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "/versions?filter=version = 1e30",
        "/models?filter=tier > 99999999999999999999",
        "/versions?filter=tags.x = '\\u12'",
        "/models?page_token=OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ==",
    ],
    ids=["int-overflow-filter", "tier-overflow-filter", "bad-escape-filter", "huge-page-token"],
)
def test_out_of_range_queries_are_invalid_input(api: Any, url: str) -> None:
    response = api.http.get(V + url, headers=api.headers("admin"))
    assert_envelope(response, 422, "invalid_input", None)


# never a 500 -----------------------------------------------------------------------------
_WEIRD_STRINGS = [
    "", " ", "x" * 5000, "models:/known/1", "../../etc/passwd", "\x00", "nul\x00byte", "é☃𝄞",
    "'; DROP TABLE models; --", "%s%n", "{digest}", "sha256:" + "f" * 64, "1e309", "-1", "NaN",
    "true", "null", "[]", "{}",
]  # fmt: skip
_WEIRD_NUMBERS = [0, -1, 1, 2**31, 2**63, 2**64, -(2**63) - 1, 10**30, 1.5, -0.0, 1e308]


def _garbage(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice(_WEIRD_NUMBERS)
    if kind in (3, 4):
        return rng.choice(_WEIRD_STRINGS)
    if kind == 5:
        return [_garbage(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = [
        "name", "version", "metrics", "params", "tags", "files", "flavor", "role", "key", "value",
        "step", "status", "card", "risk_tier", "owner", "lineage", "signature", "to", "text",
        "policy", "data_digest", "label", "groups", "matched", "tolerance", "comment",
    ]  # fmt: skip
    return {rng.choice(keys + _WEIRD_STRINGS[:8]): _garbage(rng, depth + 1)
            for _ in range(rng.randrange(5))}  # fmt: skip


# a policy any version fails (no evaluation): a fuzzed gate or approval never releases "known"
_FAILING_POLICY = "name: fuzzed\nchecks:\n  - check: metric_floor\n    metric: auc\n    min: 1\n"

_TEMPLATES: dict[str, dict[str, Any]] = {
    "/models": {"name": "fuzzed", "risk_tier": 2, "tags": {"t": "v"}, "card": {}},
    "/models/{name}": {"team": "t", "risk_tier": 1, "tags": {"a": "b"}},
    "/models/{name}/versions": {
        "flavor": "sklearn",
        "files": {"model.skops": {"digest": "{digest}", "size": 1}},
        "metrics": {"auc": 0.5},
        "params": {"a": "1"},
        "signature": {"inputs": [{"name": "a", "dtype": "float64"}]},
        "lineage": {"git": {"commit": "abc"}, "run_id": "r"},
    },
    "/models/{name}/versions/{version}": {"description": "d", "metrics": {"f1": 0.1}},
    "/models/{name}/aliases/{alias}": {"version": 1},
    "/runs": {"name": "r", "project": "p", "params": {"lr": "1"}},
    "/runs/{run_id}/end": {"status": "finished"},
    "/runs/{run_id}/batch": {
        "metrics": [{"key": "k", "value": 1.0, "step": 1}],
        "metric_columns": {"key": ["k"], "value": [2.0], "step": [2]},
        "params": {"seed": "1"},
    },
    "/tokens": {"name": "fuzz", "role": "viewer", "expires_in_days": 1},
    f"{VV}/evaluations": {
        "data_digest": "{digest}",
        "label": "a",
        "groups": ["b"],
        "resamples": 10,
        "seed": 1,
    },
    f"{VV}/gate": {"policy": _FAILING_POLICY},
    f"{VV}/approvals": {"comment": "fine"},
    # production, never a state the fuzz could reach: garbage must not move the seeded version
    f"{VV}/transitions": {"to": "production", "reason": "r"},
    f"{VV}/reproductions": {
        "matched": True,
        "tolerance": 0.1,
        "recorded": {"auc": 0.9},
        "reproduced": {"auc": 0.9},
        "data_fingerprints_matched": None,
        "detail": "d",
    },
    "/policies": {"text": _FAILING_POLICY, "model": "known"},
    "/policies/{name}": {"text": _FAILING_POLICY.replace("fuzzed", "known")},
    "/models/{name}/policy": {"policy": "tier-1"},
    # version 1 is registered: a valid body is refused by the store, garbage by the schema
    "/deployments/{name}": {
        "model": "known",
        "champion": 1,
        "canary": 2,
        "canary_share": 0.1,
        "fallbacks": [{"kind": "default", "value": 0}],
        "timeout_ms": 100,
        "canary_slo": {
            "max_error_rate": 0.05,
            "max_p95_ms": 50,
            "window_s": 60,
            "min_requests": 50,
        },
    },
    "/deployments/{name}/rollback": {"reason": "r", "evidence": {"p95": 1.0}},
    "/incidents/{incident_id}/notes": {"text": "t"},
    "/incidents/{incident_id}/mitigate": {"action": "rollback", "reason": "r", "deployment": "d"},
    "/incidents/{incident_id}/postmortem": {"sections": {"summary": "s", "impact": "i"}},
    "/deployments/{name}/labels": {
        "labels": [
            {"request_id": "r1", "label": 1.0, "row": 0},
            {"request_id": "r2", "label": "a"},
        ],
        "source": "api",
    },
    "/metrics/{name}": {
        "source": "outcome",
        "event": "purchase",
        "aggregation": "sum",
        "covariate": "spend",
        "description": "d",
    },
    "/experiments": {
        "name": "fuzzed",
        "deployment": "ghost",
        "metrics": [{"metric": "m", "role": "guardrail", "direction": "decrease", "tolerance": 0}],
        "control": 1,
        "method": "fixed",
        "correction": "holm",
        "alpha": 0.05,
        "mde": 0.02,
        "planned_units": 100,
        "hypothesis": "h",
        "start": "2026-01-01T00:00:00Z",
    },
    # no experiment is named "known": a valid body is refused as not found, garbage by the schema
    "/experiments/{name}/decision": {"action": "ship", "reason": "r", "variant": 2, "apply": True},
    "/outcomes": {
        "outcomes": [
            {"name": "purchase", "value": 1.0, "unit_id": "u1", "timestamp": "2026-01-01T00:00Z"},
            {"name": "click", "value": True, "request_id": "r1"},
        ],
        "source": "api",
    },
}


def _mutate(rng: random.Random, template: Any) -> Any:
    """The template with one value, anywhere in it, replaced by garbage."""
    if isinstance(template, dict) and template and rng.random() < 0.8:
        key = rng.choice(list(template))
        return {**template, key: _mutate(rng, template[key])}
    if isinstance(template, list) and template and rng.random() < 0.8:
        i = rng.randrange(len(template))
        return [*template[:i], _mutate(rng, template[i]), *template[i + 1 :]]
    return _garbage(rng)


def test_garbage_bodies_never_cause_a_500(api: Any, api_routes: set[tuple[str, str]]) -> None:
    rng = random.Random(20240601)
    targets = sorted((m, p) for m, p in api_routes if m in ("POST", "PATCH", "PUT"))
    headers = api.headers("admin")
    failures = []
    for i in range(600):
        method, path = targets[i % len(targets)]
        url = _dummy_url(path, api)
        roll = rng.random()
        if roll < 0.5 and path in _TEMPLATES:
            content = json.dumps(_fill(_mutate(rng, _TEMPLATES[path]), api.ids)).encode()
        elif roll < 0.8:
            content = json.dumps(_garbage(rng)).encode()
        else:
            content = rng.randbytes(rng.randrange(64))
        response = api.http.request(method, url, content=content, headers={**headers, **JSON})
        if response.status_code >= 500:
            failures.append((method, url, content[:200], response.text[:200]))
        elif response.status_code >= 400:
            assert set(response.json()) == {"error"}
    assert failures == [], "\n".join(map(str, failures))
