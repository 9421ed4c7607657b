"""`meshserve adapter PACKAGE --listen HOST:PORT`: serve one model package (what `up` runs per package)."""


def register(subparsers) -> None:
    from meshserve.adapters import server

    parser = subparsers.add_parser("adapter", help="serve one model package over gRPC")
    server.add_arguments(parser)
    parser.set_defaults(func=server.run)
