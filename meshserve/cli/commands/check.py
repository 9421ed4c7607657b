"""`meshserve check DIR`: check every model package's manifest without starting anything."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("check", help="check the model packages in a folder and list them")
    parser.add_argument("models", help="a model package, or a folder holding several")
    parser.set_defaults(func=_check)


def _check(args) -> int:
    from meshserve.core.model_package import discover_packages
    from meshserve.router.deployment_spec import deployment_for, spec_path_for
    from meshserve.sidecars.drift.plan import plan_for

    packages = discover_packages(args.models)
    deployment = deployment_for(args.models, packages)  # raises, naming file, field and fix, on a bad meshserve.yaml
    plan_for(packages, {m: d.drift.model_dump() for m, d in deployment.models.items()})  # and on a bad baseline
    for package in packages:
        package.options.check_model(package)  # the model file against its signature; raises ManifestError
        signature = package.manifest.signature
        inputs = ", ".join(f"{s.name} {s.datatype}{s.shape}" for s in signature.inputs)
        outputs = ", ".join(f"{s.name} {s.datatype}{s.shape}" for s in signature.outputs)
        print(f"ok  {package.name}:{package.version} ({package.manifest.runtime})  {inputs} -> {outputs}")
    spec = spec_path_for(args.models)
    print(f"ok  {spec}" if spec.exists() else f"(no {spec.name}: each model's newest version takes all traffic)")
    return 0
