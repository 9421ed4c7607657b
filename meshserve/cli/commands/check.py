"""`meshserve check DIR [--manifest-only]`: would these model packages serve?

A manifest can be flawless while every request fails: a Java class or method misspelt, a jar
swapped for another, an estimator method that does not exist, a dependency nobody pinned, an R
package left out of `r.packages`, a feature named otherwise than the model's variable. So by
default each package (a folder or a bundle) is loaded in a fresh adapter process, in its own
environment, and its golden examples (or one made-up row) are scored there
(meshserve/deploy/gate.py): each mistake is one line naming the file, the field and the fix.

Before that, the model files are checked against their signatures in this process, as `check`
always did: quick, and the first mistake found there is its one line on stderr (exit 2). What
only a fresh adapter finds is marked FAIL on stdout, per package (exit 1). `--manifest-only`
reads the manifests and the deployment spec and starts nothing; `--load`, from when loading had
to be asked for, skips the in-process pass so that every package is reported ok or FAIL.
"""

import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check", help="load each model package in a fresh adapter, score its golden examples, and list them")
    parser.add_argument("models", help="a model package, a bundle, or a folder holding several")
    parser.add_argument("--manifest-only", action="store_true",
                        help="only read model.yaml and meshserve.yaml: load no model, start no process")
    # Loading used to be asked for; scripts that still pass the flag get the report they parse: every
    # package loaded and marked ok or FAIL (exit 1), without the quick in-process pass that stops at the first.
    parser.add_argument("--load", action="store_true",
                        help="accepted for compatibility (loading is the default): report every package as ok or "
                             "FAIL, without first stopping at the first mistake found in this process")
    parser.set_defaults(func=_check)


def _check(args) -> int:
    from meshserve.core.model_package import discover_packages
    from meshserve.spec.deployment_spec import deployment_for, spec_path_for
    from meshserve.sidecars.drift.api import plan_for

    packages = discover_packages(args.models)
    deployment = deployment_for(args.models, packages)  # raises, naming file, field and fix, on a bad meshserve.yaml
    plan_for(packages, {m: d.drift.model_dump() for m, d in deployment.models.items()})  # and on a bad baseline
    if not args.manifest_only:
        if not args.load:  # in this process first: quick, and its first mistake ends the check (exit 2)
            for package in packages:
                package.options.check_model(package)
        if packages:
            print(f"meshserve: loading {len(packages)} model package(s), each in a fresh adapter, and scoring their "
                  "golden examples (--manifest-only skips this)", file=sys.stderr, flush=True)
    failed = 0
    debug = getattr(args, "debug", False)
    for package in packages:
        signature = package.manifest.signature
        inputs = ", ".join(f"{s.name} {s.datatype}{s.shape}" for s in signature.inputs)
        outputs = ", ".join(f"{s.name} {s.datatype}{s.shape}" for s in signature.outputs)
        if args.manifest_only:
            print(f"ok  {package.name}:{package.version} ({package.manifest.runtime})  {inputs} -> {outputs}")
            continue
        failed += _load(package, f"{inputs} -> {outputs}", debug)
    if args.manifest_only:
        print("(--manifest-only: the models were not loaded nor scored; `meshserve check DIR` does both)")
    spec = spec_path_for(args.models)
    if spec.exists():
        print(f"ok  {spec}")
    elif not spec.parent.is_file():
        print(f"(no {spec.name}: each model's newest version takes all traffic)")
    if failed:
        print(f"meshserve: {failed} of {len(packages)} model(s) would fail when served; fix what is marked FAIL"
              + ("" if debug else " (`meshserve --debug check` shows each adapter's output)"),
              file=sys.stderr)
    return 1 if failed else 0


def _load(package, signature: str, debug: bool) -> int:
    """Load and score PACKAGE, printing its lines at once (progress on a long run); 1 if it failed."""
    from meshserve.deploy.gate import check_digest, check_environment, check_loads_and_golden

    checks = [check_digest(package)]
    if checks[0].passed:
        checks += check_loads_and_golden(package)
    checks.append(check_environment(package, strict=False))
    passed = all(c.passed for c in checks)
    print(f"{'ok' if passed else 'FAIL'}  {package.name}:{package.version} ({package.manifest.runtime})  {signature}")
    for check in checks:
        for line in check.lines():
            print(f"  {line}")
    if debug and not passed:
        output = next((c.output for c in checks if c.output), [])
        print("  the adapter's output:" if output else "  (the adapter printed nothing)")
        for line in output:
            print(f"    | {line}")
    sys.stdout.flush()
    return 0 if passed else 1
