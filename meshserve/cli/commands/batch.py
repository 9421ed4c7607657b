"""`meshserve batch MODEL INPUT -o OUTPUT`: score a CSV, Parquet or JSONL file through the mesh.

Columns are matched to the model's inputs by feature name; rows go in chunks, several in
flight, through the same path as live requests, so every chunk is recorded, traced and
measured. Interrupted, the same command resumes where it stopped. Schedule it with the
operator's own scheduler (cron, a Kubernetes CronJob): see docs/batch.md.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from meshserve.cli.mesh_options import add_mesh_options


def register(subparsers) -> None:
    parser = subparsers.add_parser("batch", help="score a CSV, Parquet or JSONL file through the mesh, resumably")
    parser.add_argument("model", help="model name")
    parser.add_argument("input", help="the rows to score: .csv, .parquet or .jsonl, a column per feature")
    parser.add_argument("-o", "--output", required=True, help="where the scored rows go (.csv, .parquet or .jsonl)")
    parser.add_argument("--version", default="", help="score with this version (default: as the live split routes)")
    add_mesh_options(parser)
    parser.add_argument("--chunk-rows", type=int, default=0,
                        help="rows per request (default: as many as keep a chunk's inputs under 768 KiB, so each "
                             "chunk's record holds them whole; 100 to 20,000)")
    parser.add_argument("--in-flight", type=int, default=4, help="requests in flight at once (default 4)")
    parser.set_defaults(func=_batch)


def _batch(args) -> int:
    import grpc

    from meshserve.batch.columns import ColumnsMismatch
    from meshserve.batch.job import BatchError, BatchJob
    from meshserve.cli.mesh_client import MeshClient
    from meshserve.core.progress import Progress

    source = Path(args.input)
    if not source.is_file():
        print(f"meshserve: {source}: no such file", file=sys.stderr)
        return 2
    if args.chunk_rows < 0 or args.in_flight < 1:
        print("meshserve: --chunk-rows must be at least 1 (or 0 for automatic) and --in-flight at least 1", file=sys.stderr)
        return 2
    mesh = MeshClient.from_args(args)
    job = BatchJob(args.model, source, Path(args.output), mesh.address, args.version, args.chunk_rows, args.in_flight,
                   connect=mesh.aio_channel)
    try:
        job.format_of(job.output_path)
        resumed = job.parts_dir.exists()
        progress = Progress(job.count_rows(), f"scoring {source.name} with {args.model}"
                            + (" (resuming)" if resumed else ""))
        rows = asyncio.run(job.run(progress))
        progress.finish()
    except (BatchError, ColumnsMismatch) as exc:
        refused = exc.__cause__  # the mesh's own answer, when it refused the job before any row
        print(f"meshserve: {mesh.failure(refused) if isinstance(refused, grpc.RpcError) else exc}", file=sys.stderr)
        return 1
    print(f"wrote {rows:,} scored rows to {job.output_path} (request ids {job.job_id}-ROW)")
    return 0
