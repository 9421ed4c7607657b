"""`meshserve drift MODEL --store S`: each column's live distribution against the package's baseline,
per version and role, with the alerts the mesh's monitor raised (docs/drift.md)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ALERT_HISTORY_S = 7 * 86400  # cleared alerts shown for a week


def register(subparsers) -> None:
    parser = subparsers.add_parser("drift", help="compare a model's live inputs and outputs with its training baseline")
    parser.add_argument("model", help="model name")
    parser.add_argument("--store", required=True, help="the folder of model packages the mesh served, "
                                                      "sqlite:///PATH or postgresql://...")
    parser.add_argument("--models", default=None, help="folder of the model packages (their baselines) and "
                        "meshserve.yaml (default: --store when it is that folder); without it, the monitor's "
                        "last check is shown")
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
    from meshserve.sidecars.drift.plan import plan_for

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
    from meshserve.core.settings import get_settings
    from meshserve.sidecars.drift.baseline import read_baseline
    from meshserve.sidecars.drift.drift_tables import DriftTables
    from meshserve.sidecars.drift.monitor import check_model
    from meshserve.sidecars.drift.report import alert_lines, page, text
    from meshserve.cli.store_access import open_records_store

    models_dir = Path(args.models) if args.models else (Path(args.store) if Path(args.store).is_dir() else None)
    plan = _plan(models_dir, args.model) if models_dir else None
    now = time.time()
    store = open_records_store(args.store)
    try:
        tables = DriftTables(store)
        if plan is not None:
            baselines = {v: read_baseline(Path(p)) for v, p in plan.baselines.items()
                         if args.version in (None, v)}
            rows = [r.status_row(now) for r in check_model(store, plan, baselines, now,
                                                             get_settings().drift_max_window_rows)]
        else:  # no packages at hand: what the monitor found at its last check
            rows = tables.status(args.model)
        history = tables.alerts(args.model, since=now - ALERT_HISTORY_S)
    finally:
        store.close()
    rows = [r for r in rows if args.version in (None, r["version"]) and args.role in (None, r["role"])]
    alerts = alert_lines(rows)
    min_samples = plan.policy.min_samples if plan else None
    if args.json:
        print(json.dumps({"model": args.model, "policy": plan.policy.__dict__ if plan else None, "columns": rows,
                          "alerts": alerts, "monitor_alerts": history}, indent=2))
    else:
        print(text(args.model, rows, alerts, history, min_samples, everything=args.all))
    if args.html:
        Path(args.html).write_text(page(args.model, rows, alerts, history, min_samples))
        print(f"wrote {args.html}", file=sys.stderr)
    return 3 if alerts else 0
