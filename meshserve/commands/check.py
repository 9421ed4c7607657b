"""`meshserve check DIR`: check every model package's manifest without starting anything."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("check", help="check the model packages in a folder and list them")
    parser.add_argument("models", help="a model package, or a folder holding several")
    parser.set_defaults(func=_check)


def _check(args) -> int:
    from meshserve.model_package import discover_packages

    for package in discover_packages(args.models):
        signature = package.manifest.signature
        inputs = ", ".join(f"{s.name} {s.datatype}{s.shape}" for s in signature.inputs)
        outputs = ", ".join(f"{s.name} {s.datatype}{s.shape}" for s in signature.outputs)
        print(f"ok  {package.name}:{package.version} ({package.manifest.runtime})  {inputs} -> {outputs}")
    return 0
