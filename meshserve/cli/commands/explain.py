"""`meshserve explain REQUEST_ID`: per-feature attributions of a recorded prediction.

Scores the recorded row with one feature at a time replaced by values from recent records of
the same version, through the running mesh, pinned to the version that answered; stores the
result with the record (shown by `meshserve audit`).
"""

from __future__ import annotations

import json
import sys

from meshserve.cli.mesh_options import add_mesh_options


def register(subparsers) -> None:
    parser = subparsers.add_parser("explain", help="per-feature attributions of a recorded prediction")
    parser.add_argument("request_id", help="the request id of the prediction")
    parser.add_argument("--store", required=True, help="the folder of model packages the mesh served, "
                                                      "sqlite:///PATH or postgresql://...")
    add_mesh_options(parser)
    parser.add_argument("--background", type=int, default=50, help="recorded rows to compare against (default 50)")
    parser.add_argument("--output", default=None, help="the output to explain (default: the first numeric one)")
    parser.add_argument("--row", type=int, default=0, help="which row of a batched request (default 0)")
    parser.add_argument("--json", action="store_true", help="print the explanation as JSON")
    parser.set_defaults(func=_explain)


def _explain(args) -> int:
    from meshserve.cli.mesh_client import MeshClient
    from meshserve.sidecars.records.explain import CannotExplain, explain
    from meshserve.cli.store_access import open_records_store

    mesh = MeshClient.from_args(args)
    store = open_records_store(args.store)
    try:
        result = explain(store, args.request_id, _predictor(mesh), background=args.background,
                         output=args.output, row=args.row)
    except CannotExplain as exc:
        print(f"meshserve: cannot explain {args.request_id}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.request_id}: {result['output']} = {result['value']:.6g}; attribution of each feature "
          f"(against {result['background_rows']} recorded rows):")
    width = max(len(name) for name in result["attributions"])
    for name, value in result["attributions"].items():
        print(f"  {name:<{width}}  {value:+.6g}")
    return 0


def _predictor(mesh):
    def predict(model: str, version: str, inputs):
        import uuid

        import grpc
        import tritonclient.grpc as triton
        from tritonclient.utils import InferenceServerException

        from meshserve.core.datatypes import NUMPY_DTYPES
        from meshserve.sidecars.records.explain import EXPLAIN_ID_PREFIX, CannotExplain

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
