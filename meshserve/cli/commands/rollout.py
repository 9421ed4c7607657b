"""`meshserve rollout MODEL --weights 1=90,2=10 --shadow 3=0.5`: change a running mesh's split.

Talks to the mesh's control service (meshserve.v1.Control, SetRollout/GetRollout). Without
--weights or --shadow it prints the live split. The change is live when the command returns.

For a model with a rollout plan: `meshserve rollout status MODEL` shows its stage, step,
measurements against the bounds and history; `meshserve rollout promote|pause|resume|rollback
MODEL` acts on it by hand.
"""

from __future__ import annotations

import argparse
import sys

from meshserve.cli.mesh_options import add_mesh_options


def _pairs(text: str, value_type, what: str) -> dict:
    pairs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        version, sep, value = item.partition("=")
        if not sep or not version:
            raise argparse.ArgumentTypeError(f"'{item}' is not VERSION={what}")
        try:
            pairs[version] = value_type(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{value}' in '{item}' is not a {what}") from None
    if not pairs:
        raise argparse.ArgumentTypeError(f"give at least one VERSION={what}")
    return pairs


def _weights(text: str) -> dict[str, int]:
    return _pairs(text, int, "whole-number weight")


def _shadows(text: str) -> dict[str, float]:
    return _pairs(text, float, "fraction from 0 to 1")


def register(subparsers) -> None:
    parser = subparsers.add_parser("rollout", help="show or change a model's live traffic split (canary, shadow, rollback)")
    parser.add_argument("words", nargs="+", metavar="[ACTION] MODEL",
                        help="the model; or status, promote, pause, resume or rollback and the model, for a model "
                             "with a rollout plan")
    parser.add_argument("--weights", type=_weights, default=None, metavar="V=W,...",
                        help="relative weights of primary traffic, e.g. 1=90,2=10 (versions left out get 0)")
    parser.add_argument("--shadow", type=_shadows, action="append", default=None, metavar="V=F,...",
                        help="mirror fraction F (0..1) of requests to version V, e.g. 3=0.5; replaces the current shadows")
    parser.add_argument("--no-shadows", action="store_true", help="stop mirroring to any shadow")
    add_mesh_options(parser)
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the mesh")
    parser.set_defaults(func=_rollout)


def _rollout(args) -> int:
    if len(args.words) == 2:
        return _plan(args, *args.words)
    if len(args.words) > 2 or args.words[0] in PLAN_ACTIONS:
        print(f"meshserve: write `meshserve rollout MODEL` or `meshserve rollout {{{','.join(PLAN_ACTIONS)}}} MODEL`",
              file=sys.stderr)
        return 2
    if args.shadow and args.no_shadows:
        print("meshserve: give either --shadow or --no-shadows", file=sys.stderr)
        return 2
    return _split(args, args.words[0])


def _split(args, model: str) -> int:
    import grpc

    from meshserve.cli.mesh_client import MeshClient
    from meshserve.v1 import control_pb2 as cpb

    mesh = MeshClient.from_args(args)
    with mesh.control() as control:
        try:
            current = control.GetRollout(cpb.GetRolloutRequest(model=model), timeout=args.timeout)
            if args.weights is None and args.shadow is None and not args.no_shadows:
                print(_describe(current))
                return 0
            shadows: dict[str, float] = dict(current.shadows)
            if args.no_shadows:
                shadows = {}
            elif args.shadow is not None:
                shadows = {version: fraction for group in args.shadow for version, fraction in group.items()}
            wanted = cpb.Rollout(model=model, weights=args.weights or {}, shadows=shadows)
            applied = control.SetRollout(cpb.SetRolloutRequest(rollout=wanted), timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"meshserve: {mesh.failure(exc)}", file=sys.stderr)
            return 1
    print(_describe(applied))
    return 0


PLAN_ACTIONS = ("status", "promote", "pause", "resume", "rollback")


def _plan(args, action: str, model: str) -> int:
    import json

    import grpc

    from meshserve.cli.mesh_client import MeshClient
    from meshserve.v1 import control_pb2 as cpb

    if action not in PLAN_ACTIONS:
        print(f"meshserve: '{action}' is not one of {', '.join(PLAN_ACTIONS)}", file=sys.stderr)
        return 2
    mesh = MeshClient.from_args(args)
    with mesh.control() as control:
        try:
            if action == "status":
                answer = control.GetRolloutStatus(cpb.GetRolloutRequest(model=model), timeout=args.timeout)
            else:
                answer = control.ActOnRollout(cpb.RolloutActionRequest(model=model, action=action),
                                              timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"meshserve: {mesh.failure(exc)}", file=sys.stderr)
            return 1
    print(describe_plan(json.loads(answer.status_json)))
    return 0


def describe_plan(status: dict) -> str:
    plan, state = status["plan"], status["state"] or {}
    stage = state.get("stage", "not started")
    where = (f"step {state['step'] + 1} of {len(plan['steps'])} ({plan['steps'][state['step']]}%)"
             if stage == "step" else stage)
    lines = [f"{status['model']}: version {plan['candidate']} against {status['primary']}: {where}"
             + (" (paused)" if state.get("paused") else "")]
    weights = ", ".join(f"{v}={w}" for v, w in sorted(status["weights"].items()))
    shadows = ", ".join(f"{v}={f:g}" for v, f in sorted(status["shadows"].items())) or "none"
    lines.append(f"  live: weights {weights}; shadows {shadows}")
    if state.get("holding"):
        lines.append(f"  {state['holding']}")
    figures, bounds = state.get("measurements") or {}, plan["bounds"]
    if figures:
        def show(value, unit=""):
            return "-" if value is None else f"{value:.4g}{unit}"
        lines.append(f"  measured this stage: {figures.get('requests', 0)} requests "
                     f"(needs {plan['min_requests']}), error rate {show(figures.get('error_rate'))} "
                     f"(bound {bounds['max_error_rate']}), p99 {show(figures.get('p99_ms'), ' ms')} vs primary "
                     f"{show(figures.get('primary_p99_ms'), ' ms')} (bound {bounds['max_p99_ratio']}x)"
                     + (f", disagreement {show(figures.get('disagreement'))} on {figures.get('pairs', 0)} pairs "
                        f"(bound {bounds['max_disagreement']})" if stage == "shadow" else ""))
    for entry in state.get("history", [])[-10:]:
        lines.append(f"  {entry['what']}: {entry['why']} ({entry['by']})")
    return "\n".join(lines)


def _describe(rollout) -> str:
    total = sum(rollout.weights.values()) or 1
    weights = ", ".join(f"{v}={w} ({100 * w / total:.1f}%)" for v, w in sorted(rollout.weights.items()))
    shadows = ", ".join(f"{v}={f:g}" for v, f in sorted(rollout.shadows.items())) or "none"
    return f"{rollout.model}: weights {weights}; shadows {shadows}"
