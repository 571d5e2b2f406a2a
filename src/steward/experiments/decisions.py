"""The decision a person takes on an experiment: ship, roll back or iterate, and why.

Recording it ends the experiment (``experiment.decided`` in the ledger). Acting on the
deployment (the winner promoted and made the champion, or the traffic back to the control)
belongs to serving and the registry: ``Services.decide_experiment`` does all of it in one
transaction, so a decision is recorded with its deployment change or neither happens.
"""

from __future__ import annotations

from steward.domain.experiments import (
    Decision,
    DecisionAction,
    Experiment,
    ExperimentState,
)
from steward.errors import Conflict, InvalidInput
from steward.store.base import WriteSession

MAX_REASON = 10_000


def check_decision(
    experiment: Experiment, action: DecisionAction, reason: str, variant: int | None
) -> int | None:
    """The variant a decision ships (None for the others); refuses what cannot be decided."""
    if experiment.state is not ExperimentState.RUNNING:
        raise Conflict(
            f"Experiment {experiment.name!r} was already decided "
            f"({experiment.decision.action.value if experiment.decision else 'ended'}).",
            details={"field": "name", "state": experiment.state.value},
        )
    if not reason.strip() or len(reason) > MAX_REASON or "\x00" in reason:
        raise InvalidInput(
            f"A decision needs its reason: 1 to {MAX_REASON} characters.", field="reason"
        )
    if action is not DecisionAction.SHIP:
        if variant is not None:
            raise InvalidInput(
                f"Only a ship decision names a variant; {action.value} does not.", field="variant"
            )
        return None
    treatments = [v for v in experiment.variants if v != experiment.control]
    if variant is None and len(treatments) == 1:
        return treatments[0]
    if variant not in treatments:
        raise InvalidInput(
            f"Name the variant to ship, one of {treatments} (the control v{experiment.control} "
            "is what runs already: decide 'iterate' to keep it).",
            field="variant",
        )
    return variant


def record_decision(tx: WriteSession, experiment: Experiment, decision: Decision) -> Experiment:
    """In ``tx``, with whatever the decision changed: the store locks the experiment and
    refuses a second decision (Conflict), which rolls the whole transaction back."""
    return tx.update_experiment(
        experiment.name,
        {
            "state": ExperimentState.DECIDED,
            "decision": decision,
            "end": experiment.end or decision.decided_at,
        },
        kind="experiment.decided",
        payload={
            "action": decision.action.value,
            "variant": decision.variant,
            "reason": decision.reason,
            "applied": decision.applied,
            "deployment": experiment.deployment,
        },
    )
