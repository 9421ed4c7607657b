"""`meshserve explain REQUEST_ID`: per-feature attributions of a recorded prediction.

Scores the recorded row with one feature at a time replaced by values from recent records of
the same version, through the running mesh, pinned to the version that answered; stores the
result with the record (shown by `meshserve audit`). The running mesh does it all
(meshserve.v1.Control/Explain); with `--store` this command reads the records itself and sends
only the scoring to the mesh.
"""

from __future__ import annotations

import json
import sys

from meshserve.cli.shared_options import add_records_options


def register(subparsers) -> None:
    parser = subparsers.add_parser("explain", help="per-feature attributions of a recorded prediction")
    parser.add_argument("request_id", help="the request id of the prediction")
    add_records_options(parser)
    parser.add_argument("--background", type=int, default=50, help="recorded rows to compare against (default 50)")
    parser.add_argument("--output", default=None, help="the output to explain (default: the first numeric one)")
    parser.add_argument("--row", type=int, default=0, help="which row of a batched request (default 0)")
    parser.add_argument("--json", action="store_true", help="print the explanation as JSON")
    parser.set_defaults(func=_explain)


def _explain(args) -> int:
    from meshserve.cli.records_source import RecordsSource
    from meshserve.sidecars.records.api import CannotExplain

    source = RecordsSource(args)
    try:
        result = _by_mesh(source, args) if source.through_mesh else _from_store(source, args)
    except CannotExplain as exc:
        print(f"meshserve: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.request_id}: {result['output']} = {result['value']:.6g}; attribution of each feature "
          f"(against {result['background_rows']} recorded rows):")
    width = max(len(name) for name in result["attributions"])
    for name, value in result["attributions"].items():
        print(f"  {name:<{width}}  {value:+.6g}")
    return 0


def _from_store(source, args) -> dict:
    from meshserve.sidecars.records.api import CannotExplain, explain

    with source.store() as store:
        try:
            return explain(store, args.request_id, _predictor(source.mesh), background=args.background,
                           output=args.output, row=args.row)
        except CannotExplain as exc:
            raise CannotExplain(f"cannot explain {args.request_id}: {exc}") from None


def _by_mesh(source, args) -> dict:
    """The mesh explains it; a prediction it cannot explain is FAILED_PRECONDITION, said as above."""
    import grpc

    from meshserve.sidecars.records.api import CannotExplain
    from meshserve.v1 import control_pb2 as cpb

    request = cpb.ExplainRequest(request_id=args.request_id, background=args.background, output=args.output or "",
                                 row=args.row)
    with source.mesh.control() as control:
        try:
            return json.loads(control.Explain(request, timeout=300).explanation_json)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION and exc.details().startswith("cannot explain"):
                raise CannotExplain(exc.details()) from None
            raise source.failed(exc) from None


def _predictor(mesh):
    def predict(model: str, version: str, inputs):
        import uuid

        import grpc
        import tritonclient.grpc as triton
        from tritonclient.utils import InferenceServerException

        from meshserve.core.datatypes import NUMPY_DTYPES
        from meshserve.sidecars.records.api import EXPLAIN_ID_PREFIX, CannotExplain

        datatype = {dtype.str: name for name, dtype in NUMPY_DTYPES.items()}
        client = mesh.triton()
        tensors = []
        for name, array in inputs.items():
            tensor = triton.InferInput(name, list(array.shape), datatype.get(array.dtype.str, "BYTES"))
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        try:
            answer = client.infer(model, tensors, model_version=version, headers=mesh.headers,
                                  request_id=f"{EXPLAIN_ID_PREFIX}{uuid.uuid4().hex}", client_timeout=120)
        except InferenceServerException as exc:  # tritonclient spells the status "StatusCode.NAME"
            code = grpc.StatusCode.__members__.get((exc.status() or "").rpartition(".")[2], grpc.StatusCode.UNKNOWN)
            raise CannotExplain(mesh.failure_of(code, exc.message())) from None
        return {o["name"]: answer.as_numpy(o["name"]) for o in answer.get_response(as_json=True)["outputs"]}
    return predict
