"""`meshserve drift MODEL`: each column's live distribution against the package's baseline, per
version and role, with the alerts the mesh's monitor raised (docs/drift.md).

The running mesh checks its live windows against the baselines of the packages it serves
(meshserve.v1.Control/GetDrift); with `--store` the command checks them itself, against the
baselines in `--models` (or the `--store` folder), or else shows the monitor's last check."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from meshserve.cli.shared_options import add_models_option, add_records_options, models_dir_of

ALERT_HISTORY_S = 7 * 86400  # cleared alerts shown for a week


def register(subparsers) -> None:
    parser = subparsers.add_parser("drift", help="compare a model's live inputs and outputs with its training baseline")
    parser.add_argument("model", help="model name")
    add_records_options(parser)
    add_models_option(parser, "their baselines, with --store; without either, the monitor's last check is shown")
    parser.add_argument("--version", default=None, help="only this version")
    parser.add_argument("--role", default=None, choices=["primary", "canary", "shadow"], help="only this role")
    parser.add_argument("--html", default=None, help="also write an HTML report with the histograms to this file")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--all", action="store_true", help="list every column, not only the ten highest scores")
    parser.set_defaults(func=_drift)


def _plan(models_dir: Path, model: str):
    from meshserve.core.errors import ManifestError
    from meshserve.core.model_package import discover_packages
    from meshserve.spec.deployment_spec import load_spec, spec_path_for
    from meshserve.sidecars.drift.api import plan_for

    packages = discover_packages(models_dir)
    spec = load_spec(spec_path_for(models_dir))
    plans = plan_for(packages, {m: d.drift.model_dump() for m, d in spec.models.items()})
    plan = next((p for p in plans if p.model == model), None)
    if plan is None:
        names = sorted({p.name for p in packages})
        raise ManifestError(str(models_dir), model, f"no package of '{model}' with a baseline here (models: "
                            f"{', '.join(names)})", "make one with `meshserve baseline DIR --data TRAINING_DATA`, "
                            "or check the model name and that drift is not disabled in meshserve.yaml")
    return plan


def _drift(args) -> int:
    from meshserve.cli.records_source import RecordsSource
    from meshserve.sidecars.drift.api import alert_lines, page, text

    now = time.time()
    source = RecordsSource(args)
    found = _from_mesh(source, args, now) if source.through_mesh else _from_store(source, args, now)
    rows = [r for r in found["columns"] if args.version in (None, r["version"]) and args.role in (None, r["role"])]
    history, policy = found["alerts"], found["policy"]
    alerts = alert_lines(rows)
    min_samples = policy["min_samples"] if policy else None
    if args.json:
        print(json.dumps({"model": args.model, "policy": policy, "columns": rows, "alerts": alerts,
                          "monitor_alerts": history}, indent=2))
    else:
        print(text(args.model, rows, alerts, history, min_samples, everything=args.all))
    if args.html:
        Path(args.html).write_text(page(args.model, rows, alerts, history, min_samples))
        print(f"wrote {args.html}", file=sys.stderr)
    return 3 if alerts else 0


def _from_store(source, args, now: float) -> dict:
    """{"columns", "alerts", "policy"} as the mesh's GetDrift answers them, from the store itself."""
    from meshserve.core.settings import get_settings
    from meshserve.sidecars.drift.api import read_baseline
    from meshserve.sidecars.drift.api import DriftTables
    from meshserve.sidecars.drift.api import check_model

    models_dir = models_dir_of(args)
    plan = _plan(models_dir, args.model) if models_dir else None
    with source.store() as store:
        tables = DriftTables(store)
        if plan is not None:
            baselines = {v: read_baseline(Path(p)) for v, p in plan.baselines.items()
                         if args.version in (None, v)}
            rows = [r.status_row(now) for r in check_model(store, plan, baselines, now,
                                                             get_settings().drift_max_window_rows)]
        else:  # no packages at hand: what the monitor found at its last check
            rows = tables.status(args.model)
        history = tables.alerts(args.model, since=now - ALERT_HISTORY_S)
    return {"columns": rows, "alerts": history, "policy": plan.policy.__dict__ if plan else None}


def _from_mesh(source, args, now: float) -> dict:
    from meshserve.v1 import control_pb2 as cpb

    request = cpb.GetDriftRequest(model=args.model, check_now=True, version=args.version or "",
                                  alerts_since=now - ALERT_HISTORY_S)
    return json.loads(source.call("GetDrift", request, timeout=600).drift_json)
