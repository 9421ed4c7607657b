"""The control API's Deploy: a running version gets a role only once the validation gate passes.

The version must be one the mesh runs (listed in meshserve.yaml, usually as a variant with
weight 0: loaded, taking no traffic), or one whose package is in the models folder: the
launcher's package watcher loads it at weight 0 (meshserve/launcher/package_watcher.py) and
Deploy waits for that, up to the deploy_wait_s setting. The gate (meshserve/deploy/gate.py) loads its package in
a fresh adapter and checks it against the live version; only then is the split changed,
through the same live rollouts as SetRollout, so nothing in flight is dropped. Every deploy,
refused or applied, is in the deployment log with who asked, the digest and the gate's result.
"""

from __future__ import annotations

import asyncio
import time

import grpc
from meshserve.envoy.routing import EnvoyError
from meshserve.spec.deployment_log import caller_of
from meshserve.spec.deployment_spec import SPEC_NAME
from meshserve.spec.models_folder import find_in_folder
from meshserve.core.settings import get_settings, variable_for

from meshserve.core.errors import MeshError, abort, quoted
from meshserve.deploy.gate import GateResult, run_gate
from meshserve.deploy.roles import RoleError, live_primary, split_for
from meshserve.v1 import control_pb2 as cpb


def _checks(result: GateResult) -> list[cpb.GateCheck]:
    return [cpb.GateCheck(name=c.name, passed=c.passed, reason=c.reason, warnings=c.warnings) for c in result.checks]


def not_running(model: str, version: str, running: list[str], folder: str) -> str:
    where = f"the models folder {folder}" if folder else "the mesh's models folder"
    what = (f"version '{quoted(version)}' of '{quoted(model)}' is not running in this mesh (running: "
            f"{', '.join(running)})" if running else f"model '{quoted(model)}' is not served by this mesh")
    return (f"{what}, and no package of it is in {where}. Put its package or bundle (model.yaml name "
            f"'{quoted(model)}', version '{quoted(version)}') into {where} and deploy again: the mesh loads it "
            "without a restart, at weight 0, and the deploy then gives it its role")


def _running(servicer, model: str, version: str) -> bool:
    entry = servicer.table.models.get(model)
    deployed = servicer.rollouts.spec.models.get(model)
    return entry is not None and version in entry.versions and deployed is not None and version in deployed.replicas


async def _wait_for_load(servicer, model: str, version: str, context: grpc.aio.ServicerContext) -> None:
    """Until the package watcher has loaded MODEL:VERSION from the models folder; refuse when no
    package of it is there, when loading it fails, or when it takes longer than the deploy_wait_s setting."""
    control = servicer.table.control
    folder = control.models_dir
    entry = servicer.table.models.get(model)
    running = sorted(servicer.rollouts.spec.models[model].replicas) if model in servicer.rollouts.spec.models else []
    location = await asyncio.to_thread(find_in_folder, folder, model, version) if folder else None
    if location is None:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                            not_running(model, version, running if entry is not None else [], folder))
    if not control.watch_interval_s:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                            f"version '{quoted(version)}' of '{quoted(model)}' is in {location} but this mesh does not "
                            f"watch its models folder ({variable_for('watch_interval_s')} is 0); start it with the "
                            "watcher on "
                            "to load packages while it runs")
    started, waited = servicer.table.generation, get_settings().deploy_wait_s
    deadline = time.monotonic() + waited
    while not _running(servicer, model, version):
        failed = next((u for u in servicer.table.unavailable if u.name == model and u.version in (version, "")), None)
        if failed is not None and servicer.table.generation > started:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"the mesh could not load '{quoted(model)}' version '{quoted(version)}' from "
                                f"{location}: {failed.reason}")
        if time.monotonic() > deadline:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"version '{quoted(version)}' of '{quoted(model)}' is in {location}, but the mesh did "
                                f"not load it within {waited:g} s; see the output of `meshserve up`, and deploy again "
                                "once it says it serves it")
        await asyncio.sleep(0.25)


async def deploy(servicer, request: cpb.DeployRequest, context: grpc.aio.ServicerContext) -> cpb.DeployResponse:
    if servicer.rollouts is None:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                            "deploying needs the mesh to run Envoy in front of the adapters (started with --no-envoy)")
    if not request.version:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "version: name the version to deploy")
    if not _running(servicer, request.model, request.version):
        await _wait_for_load(servicer, request.model, request.version, context)
    try:
        model = servicer.table.model(request.model)
    except MeshError as exc:
        await abort(context, exc)
    if servicer.rollouts.spec.models[model.name].rollout_plan is not None:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                            f"model '{model.name}' follows a rollout_plan in {SPEC_NAME}; act on it with "
                            "`meshserve rollout promote|pause|resume|rollback MODEL` instead")
    package = model.versions[request.version].package
    if request.bundle_digest and request.bundle_digest != package.digest:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                            f"version '{quoted(request.version)}' of '{model.name}' runs package digest "
                            f"{package.digest}, not the bundle's {quoted(request.bundle_digest, 80)}: a running "
                            "version keeps the package it loaded; package the change as a new version, put that "
                            "bundle into the models folder and deploy the new version")
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
        applied = await asyncio.to_thread(servicer.rollouts.apply, model.name, weights, shadows)
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
