"""The control API's Deploy: a running version gets a role only once the validation gate passes.

The version must be one the mesh runs (listed in meshserve.yaml, usually as a variant with
weight 0: loaded, taking no traffic). The gate (meshserve/deploy/gate.py) loads its package in
a fresh adapter and checks it against the live version; only then is the split changed,
through the same live rollouts as SetRollout, so nothing in flight is dropped. Every deploy,
refused or applied, is in the deployment log with who asked, the digest and the gate's result.
"""

from __future__ import annotations

import asyncio

import grpc
from meshserve.envoy.admin import EnvoyError
from meshserve.router.control_plane.deployment_log import caller_of
from meshserve.router.deployment_spec import SPEC_NAME

from meshserve.core.errors import MeshError, abort, quoted
from meshserve.deploy.gate import GateResult, run_gate
from meshserve.deploy.roles import RoleError, live_primary, split_for
from meshserve.v1 import control_pb2 as cpb


def _checks(result: GateResult) -> list[cpb.GateCheck]:
    return [cpb.GateCheck(name=c.name, passed=c.passed, reason=c.reason, warnings=c.warnings) for c in result.checks]


def not_running(model: str, version: str, running: list[str]) -> str:
    return (f"version '{quoted(version)}' of '{model}' is not running in this mesh (running: {', '.join(running)}). "
            f"Put its package or bundle in the models folder, add it to {SPEC_NAME} under models.{model}.variants "
            f"as `- {{version: \"{quoted(version)}\", weight: 0}}` (loaded, taking no traffic), and restart the mesh "
            f"(`meshserve up`) to load it; then deploy it")


async def deploy(servicer, request: cpb.DeployRequest, context: grpc.aio.ServicerContext) -> cpb.DeployResponse:
    if servicer.rollouts is None:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                            "deploying needs the mesh to run Envoy in front of the adapters (started with --no-envoy)")
    try:
        model = servicer.table.model(request.model)
    except MeshError as exc:
        await abort(context, exc)
    if not request.version:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "version: name the version to deploy")
    running = sorted(servicer.rollouts.spec.models[model.name].replicas)
    if request.version not in running or request.version not in model.versions:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, not_running(model.name, request.version, running))
    if servicer.rollouts.spec.models[model.name].rollout_plan is not None:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                            f"model '{model.name}' follows a rollout_plan in {SPEC_NAME}; act on it with "
                            "`meshserve rollout promote|pause|resume|rollback MODEL` instead")
    package = model.versions[request.version].package
    if request.bundle_digest and request.bundle_digest != package.digest:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                            f"version '{quoted(request.version)}' of '{model.name}' runs package digest "
                            f"{package.digest}, not the bundle's {quoted(request.bundle_digest, 80)}: put this bundle "
                            f"in the models folder in place of the running package and restart the mesh")
    current = servicer.rollouts.current(model.name)
    try:
        split_for(current, request.version, request.role, request.amount)  # refuse a bad role before the gate
    except RoleError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    primary = live_primary(current, request.version)
    live = model.versions[primary].package if primary in model.versions else None
    caller = caller_of(context.invocation_metadata(), context.peer())
    asked = {"model": model.name, "version": request.version, "role": request.role, "amount": request.amount,
             "digest": package.digest, "strict": request.strict,
             "allow_signature_change": request.allow_signature_change}
    result = await asyncio.to_thread(run_gate, package, live, allow_signature_change=request.allow_signature_change,
                                     strict=request.strict)
    if not result.passed:
        servicer.log.append(caller, "Deploy", "refused", **asked, gate=result.as_log(),
                            reason="gate refused: " + ", ".join(result.refused_by))
        return cpb.DeployResponse(deployed=False, checks=_checks(result), digest=package.digest,
                                  rollout=cpb.Rollout(model=model.name, weights=current.weights,
                                                      shadows=current.shadows))
    try:
        # From the split live now: another change may have landed while the gate ran.
        weights, shadows = split_for(servicer.rollouts.current(model.name), request.version, request.role,
                                     request.amount)
        applied = servicer.rollouts.apply(model.name, weights, shadows)
        await asyncio.to_thread(servicer.envoy_admin.wait_for_routes, servicer.rollouts.version_info)
    except EnvoyError as exc:
        servicer.log.append(caller, "Deploy", "failed", **asked, gate=result.as_log(), reason=str(exc))
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
    except MeshError as exc:
        servicer.log.append(caller, "Deploy", "refused", **asked, gate=result.as_log(), reason=exc.message)
        await abort(context, exc)
    except ValueError as exc:  # RoleError or ManifestError: a split that cannot be carried now
        servicer.log.append(caller, "Deploy", "refused", **asked, gate=result.as_log(), reason=str(exc))
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    servicer.log.append(caller, "Deploy", "applied", **asked, gate=result.as_log(),
                        applied={"weights": dict(applied.weights), "shadows": dict(applied.shadows)})
    return cpb.DeployResponse(deployed=True, checks=_checks(result), digest=package.digest,
                              rollout=cpb.Rollout(model=model.name, weights=applied.weights, shadows=applied.shadows))
