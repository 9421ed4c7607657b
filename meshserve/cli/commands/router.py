"""`meshserve router --table FILE --listen HOST:PORT`: the front service (what `up` runs)."""


def register(subparsers) -> None:
    from meshserve.router import server

    parser = subparsers.add_parser("router", help="run the front gRPC router over a models table")
    server.add_arguments(parser)
    parser.set_defaults(func=server.run)
