"""Acting on a canary breach in the gateway process: roll the deployment back, then alert.

`CanaryGuard.breached(breach)` is called on the event loop by the request that saw the breach;
it only hands the breach to the guard's own worker thread and returns. There, the rollback is
`DeploymentService.rollback(..., if_revision=breach.revision)`: a compare-and-set on the
revision whose canary breached, so when the deployment changed meanwhile (someone deployed,
or another replica rolled the same breach back first) the store refuses it with Conflict and
the guard logs one line and does nothing else. The replica that wins raises the alert: an
ERROR log line, ``steward_canary_rollbacks_total{deployment,version}``, and the webhook
message when a sender is configured. The runtime's next refresh swaps the new revision in.

A store that is down is retried a few times with backoff; a rollback that cannot be made is
alerted too, saying to roll back by hand.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Protocol

from steward.domain.deployments import Deployment
from steward.errors import Conflict, NotFound, StewardError, Unavailable
from steward.serving.canary_watch import Breach
from steward.serving.deployments import DeploymentService
from steward.serving.metrics import GatewayMetrics
from steward.store.base import MetadataStore

logger = logging.getLogger(__name__)

SERVICE_ACTOR = "steward-serve"  # the ledger's actor of an automatic rollback


class AlertSender(Protocol):
    """What the guard needs of an alert channel (`steward.alerts.WebhookAlerts`)."""

    def send(self, text: str, **fields: Any) -> Future[bool]: ...
    def close(self, timeout_s: float = ...) -> None: ...


class CanaryGuard:
    """Rolls back the deployments whose canary breached; see the module."""

    def __init__(
        self,
        store: MetadataStore,
        metrics: GatewayMetrics,
        alerts: AlertSender | None = None,
        *,
        actor: str = SERVICE_ACTOR,
        attempts: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        self.deployments = DeploymentService(store)
        self.metrics = metrics
        self.alerts = alerts
        self.actor = actor
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._executor: ThreadPoolExecutor | None = None
        self._pending: set[Future[Deployment | None]] = set()
        self._lock = threading.Lock()

    def breached(self, breach: Breach) -> Future[Deployment | None]:
        """Roll back in the guard's thread; never blocks the caller (the event loop)."""
        with self._lock:
            if self._executor is None:  # made on first use: most servers never breach
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="steward-rollback")
            future = self._executor.submit(self.roll_back, breach)
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def roll_back(self, breach: Breach) -> Deployment | None:
        """The rollback of ``breach`` (blocking): the new revision, or None when none was made
        (another change won, or the store kept refusing)."""
        failure: Exception | None = None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                deployment = self.deployments.rollback(
                    self.actor, breach.deployment,
                    reason=f"canary SLO breached: {breach.summary()}",
                    evidence=breach.evidence(), if_revision=breach.revision,
                )  # fmt: skip
            except (Conflict, NotFound) as lost:  # changed meanwhile, or rolled back elsewhere
                logger.info(
                    "canary of %s breached at revision %d, not rolled back here: %s",
                    breach.deployment, breach.revision, lost.message,
                )  # fmt: skip
                return None
            except Unavailable as error:
                failure = error
            except StewardError as error:  # refused for good (e.g. a champion no longer live)
                failure = error
                break
            except Exception as error:
                logger.exception("rolling back %s failed", breach.deployment)
                failure = error
            else:
                self._rolled_back(breach, deployment)
                return deployment
        self._not_rolled_back(breach, failure)
        return None

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait up to ``timeout_s`` for the rollbacks in flight; True when none is left."""
        with self._lock:
            pending = set(self._pending)
        return not pending or not wait(pending, timeout=timeout_s).not_done

    def close(self, timeout_s: float = 10.0) -> None:
        """Wait up to ``timeout_s`` for rollbacks in flight, then close the alert sender."""
        self.drain(timeout_s)
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if self.alerts is not None:
            self.alerts.close(timeout_s)

    def _forget(self, future: Future[Deployment | None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _rolled_back(self, breach: Breach, deployment: Deployment) -> None:
        canary = breach.canary.version
        self.metrics.canary_rollbacks.labels(breach.deployment, str(canary)).inc()
        text = (
            f"Steward rolled back the canary of {breach.deployment}: {breach.summary()}. All "
            f"traffic is on champion v{deployment.champion} (revision {breach.revision} -> "
            f"{deployment.revision}); the evidence is in the deployment.rolled_back event."
        )
        logger.error("%s", text)
        self._alert(text, breach)

    def _not_rolled_back(self, breach: Breach, failure: Exception | None) -> None:
        why = failure.message if isinstance(failure, StewardError) else repr(failure)
        text = (
            f"The canary of {breach.deployment} breached its SLO ({breach.summary()}) but the "
            f"automatic rollback failed: {why}. Roll back by hand: "
            f"steward rollback {breach.deployment}"
        )
        logger.error("%s", text)
        self._alert(text, breach)

    def _alert(self, text: str, breach: Breach) -> None:
        if self.alerts is None:
            return
        try:
            self.alerts.send(text)
        except Exception:  # a sender must not raise, but an alert never stops the guard
            logger.exception("could not queue the alert about %s", breach.deployment)
