"""`meshserve check DIR [--load]`: check every model package's manifest without starting anything.

With `--load` each package (a folder or a bundle) is also loaded in a fresh adapter process
and its golden examples scored there (meshserve/deploy/gate.py), so a missing R package, a
misspelled predict function or a forgotten dependency shows up before the model serves.
"""

import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("check", help="check the model packages in a folder and list them")
    parser.add_argument("models", help="a model package, a bundle, or a folder holding several")
    parser.add_argument("--load", action="store_true",
                        help="also load each model in a fresh adapter and score its golden examples")
    parser.set_defaults(func=_check)


def _check(args) -> int:
    from meshserve.core.model_package import discover_packages
    from meshserve.router.deployment_spec import deployment_for, spec_path_for
    from meshserve.sidecars.drift.plan import plan_for

    packages = discover_packages(args.models)
    deployment = deployment_for(args.models, packages)  # raises, naming file, field and fix, on a bad meshserve.yaml
    plan_for(packages, {m: d.drift.model_dump() for m, d in deployment.models.items()})  # and on a bad baseline
    failed = 0
    for package in packages:
        if not args.load:  # a fresh adapter checks the model file itself, and more
            package.options.check_model(package)  # the model file against its signature; raises ManifestError
        signature = package.manifest.signature
        inputs = ", ".join(f"{s.name} {s.datatype}{s.shape}" for s in signature.inputs)
        outputs = ", ".join(f"{s.name} {s.datatype}{s.shape}" for s in signature.outputs)
        if not args.load:
            print(f"ok  {package.name}:{package.version} ({package.manifest.runtime})  {inputs} -> {outputs}")
            continue
        failed += _load(package, f"{inputs} -> {outputs}")
    spec = spec_path_for(args.models)
    if spec.exists():
        print(f"ok  {spec}")
    elif not spec.parent.is_file():
        print(f"(no {spec.name}: each model's newest version takes all traffic)")
    if failed:
        print(f"meshserve: {failed} of {len(packages)} model(s) would fail when served; fix what is marked FAIL",
              file=sys.stderr)
    return 1 if failed else 0


def _load(package, signature: str) -> int:
    from meshserve.deploy.gate import check_digest, check_environment, check_loads_and_golden

    checks = [check_digest(package)]
    if checks[0].passed:
        checks += check_loads_and_golden(package)
    checks.append(check_environment(package, strict=False))
    passed = all(c.passed for c in checks)
    print(f"{'ok  ' if passed else 'FAIL'}  {package.name}:{package.version} ({package.manifest.runtime})  {signature}")
    for check in checks:
        for line in check.lines():
            print(f"  {line}")
    return 0 if passed else 1
