"""Traffic control from the console: the control API's own SetRollout and ActOnRollout, called
in-process with the viewer's identity, so a change from the browser is validated, applied and
written to the deployment log exactly as `meshserve rollout` or a gRPC client's would be, with
the reason the viewer gave as the entry's `why`.
"""

from __future__ import annotations

import json

from meshserve.console.requests import RolloutAction, RolloutChange
from meshserve.core.mesh_protocol import Metadata
from meshserve.router.rest.servicer_calls import CallAborted, HttpCallContext
from meshserve.spec.deployment_log import REASON_HEADER, caller_of
from meshserve.v1 import control_pb2 as cpb


class ChangeRefused(Exception):
    """The control service refused the change; CODE is its gRPC status."""

    def __init__(self, code, details: str):
        super().__init__(details)
        self.code, self.details = code, details


def _context(metadata: Metadata, peer: str, reason: str) -> HttpCallContext:
    kept = [(k, v) for k, v in metadata if k != REASON_HEADER]
    return HttpCallContext([*kept, (REASON_HEADER, reason)], peer=peer)


async def set_rollout(control, model: str, change: RolloutChange, metadata: Metadata, peer: str) -> dict:
    """MODEL's weights and shadows set as CHANGE asks; the split now live."""
    request = cpb.SetRolloutRequest(rollout=cpb.Rollout(model=model, weights=change.weights, shadows=change.shadows))
    try:
        answer = await control.SetRollout(request, _context(metadata, peer, change.reason))
    except CallAborted as exc:
        raise ChangeRefused(exc.code, exc.details) from None
    return {"weights": dict(answer.weights), "shadows": dict(answer.shadows)}


async def act_on_rollout(control, model: str, action: RolloutAction, metadata: Metadata, peer: str) -> dict:
    """A progressive rollout of MODEL promoted, paused, resumed or rolled back by hand; the
    deployment log gets the request (who, why) beside the controller's own entry."""
    context = _context(metadata, peer, action.reason)
    try:
        answer = await control.ActOnRollout(cpb.RolloutActionRequest(model=model, action=action.action), context)
    except CallAborted as exc:
        control.log.append(caller_of(context.invocation_metadata(), peer), "ActOnRollout", "refused", model=model,
                           step=action.action, reason=exc.details)
        raise ChangeRefused(exc.code, exc.details) from None
    control.log.append(caller_of(context.invocation_metadata(), peer), "ActOnRollout", "applied", model=model,
                       step=action.action)
    return json.loads(answer.status_json)
