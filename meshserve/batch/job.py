"""A batch job: read an input file in chunks, score each chunk as one request through the mesh
(several in flight), and write the answers in the input's order.

Each chunk's answer is written to its own Arrow part file (renamed into place when complete) in
OUTPUT.parts/ before it counts as done, so a job killed at any point and started again skips
the chunks already answered and scores each row once. A chunk's request id is derived from
the job (input file, model, version, chunk size) and the chunk's first row, so a chunk that was
in flight when the job died is scored again under the same id and recorded once. When every
chunk is done the parts are joined into OUTPUT, in order, and removed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pb_grpc

from meshserve.batch.columns import InputPlan, output_columns, plan_inputs
from meshserve.core import tabular_files
from meshserve.core.datatypes import NUMPY_DTYPES
from meshserve.core.grpc_server import channel_options
from meshserve.core.settings import get_settings
from meshserve.core.tabular_files import TableFormat, TableWriter
from meshserve.v1 import control_pb2 as cpb
from meshserve.v1 import control_pb2_grpc as cpb_grpc

# A chunk's input tensors are kept whole in its prediction record only up to
# records_max_tensor_bytes (1 MiB by default); automatic chunks stay under it, with a margin.
CHUNK_INPUT_BYTES = 768 * 1024
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 100, 20_000
BYTES_PER_TEXT_VALUE = 64  # a guess for BYTES inputs, whose size the signature does not say


def _row_bytes(spec) -> int:
    values = max(len(spec.features), 1)
    return values * (BYTES_PER_TEXT_VALUE if spec.datatype == "BYTES" else np.dtype(NUMPY_DTYPES[spec.datatype]).itemsize)


def chunk_rows_for(inputs) -> int:
    """Rows per request that keep every chunk's inputs in one record and large enough to pay for the hops."""
    row_bytes = max((_row_bytes(spec) for spec in inputs), default=1)  # the record limit applies per tensor
    return max(MIN_CHUNK_ROWS, min(MAX_CHUNK_ROWS, CHUNK_INPUT_BYTES // max(row_bytes, 1)))


def unrecorded_inputs(inputs, chunk_rows: int) -> list[str]:
    """Inputs whose chunk tensor would pass records_max_tensor_bytes, so records keep only a marker."""
    limit = get_settings().records_max_tensor_bytes
    return [f"{spec.name} ({chunk_rows * _row_bytes(spec):,} bytes)" for spec in inputs
            if spec.datatype != "BYTES" and chunk_rows * _row_bytes(spec) > limit]


class BatchError(RuntimeError):
    """The job cannot go on; the message says why and what to do."""


@dataclass
class BatchJob:
    model: str
    input_path: Path
    output_path: Path
    address: str
    version: str = ""
    chunk_rows: int = 0  # 0: sized from the model's inputs (chunk_rows_for)
    in_flight: int = 4
    timeout_s: float = 300.0
    # The channel to the mesh, for TLS and credentials (meshserve/cli/mesh_client.py); plaintext without one.
    connect: Callable[[], grpc.aio.Channel] | None = None

    @property
    def job_id(self) -> str:
        stat = self.input_path.stat()
        key = f"{self.input_path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.model}|{self.version}|{self.chunk_rows}"
        return "batch-" + hashlib.sha256(key.encode()).hexdigest()[:12]

    @property
    def parts_dir(self) -> Path:
        return self.output_path.with_name(self.output_path.name + ".parts")

    def format_of(self, path: Path) -> TableFormat:
        try:
            return tabular_files.format_of(path)
        except tabular_files.TabularFileError as exc:
            raise BatchError(f"{path}: {exc.problem}; {exc.fix}") from None

    # ---- input ------------------------------------------------------------------------------

    def count_rows(self) -> int | None:
        self.format_of(self.input_path)
        return tabular_files.count_rows(self.input_path)

    def chunks(self) -> Iterator[pa.Table]:
        """The input in tables of chunk_rows rows: the same file always splits at the same rows,
        which is what lets a job started again skip the chunks already answered."""
        self.format_of(self.input_path)
        try:
            yield from tabular_files.iter_tables(self.input_path, self.chunk_rows)
        except tabular_files.TabularFileError as exc:
            raise BatchError(f"{self.input_path}: {exc.problem}; {exc.fix}") from None

    # ---- scoring ----------------------------------------------------------------------------

    async def signature(self, channel) -> tuple[list, list]:
        control = cpb_grpc.ControlStub(channel)
        try:
            model = await control.GetModel(cpb.GetModelRequest(name=self.model), timeout=30)
        except grpc.aio.AioRpcError as exc:
            raise BatchError(f"{exc.code().name} from the mesh at {self.address}: {exc.details()}") from exc
        versions = {v.version: v for v in model.versions}
        chosen = versions.get(self.version) if self.version else max(
            model.versions, key=lambda v: model.rollout.weights.get(v.version, 0))
        if chosen is None:
            raise BatchError(f"model '{self.model}' has no version '{self.version}'; versions: {', '.join(versions)}")
        return list(chosen.inputs), list(chosen.outputs)

    def request(self, table: pa.Table, plans: list[InputPlan], request_id: str) -> pb.ModelInferRequest:
        request = pb.ModelInferRequest(model_name=self.model, model_version=self.version, id=request_id)
        for plan in plans:
            array = plan.tensor(table)
            tensor = request.inputs.add(name=plan.name, datatype=plan.datatype, shape=list(array.shape))
            if plan.datatype == "BYTES":
                tensor.contents.bytes_contents.extend(array.reshape(-1).tolist())
            else:
                request.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
        return request

    def part_path(self, start: int) -> Path:
        return self.parts_dir / f"{start:012d}.arrow"

    def write_part(self, start: int, table: pa.Table, answer: pb.ModelInferResponse, outputs, request_id: str) -> None:
        from tritonclient.utils import deserialize_bytes_tensor, triton_to_np_dtype

        columns: dict[str, pa.Array] = {"request_id": pa.repeat(request_id, table.num_rows),
                                        "row": pa.array(np.arange(start, start + table.num_rows))}
        features = {o.name: list(o.features) for o in outputs}
        for index, tensor in enumerate(answer.outputs):
            raw = answer.raw_output_contents[index]
            if tensor.datatype == "BYTES":
                array = deserialize_bytes_tensor(raw)
            else:
                array = np.frombuffer(raw, dtype=triton_to_np_dtype(tensor.datatype))
            array = array.reshape(list(tensor.shape))
            columns.update(output_columns(tensor.name, array, features.get(tensor.name, [])))
        scored = table
        for name, values in columns.items():
            if name in scored.column_names:
                name = f"output.{name}"
            scored = scored.append_column(name, values)
        temporary = self.part_path(start).with_suffix(".tmp")
        feather.write_feather(scored, temporary, compression="uncompressed")  # read once, by join: no need to pack it
        os.replace(temporary, self.part_path(start))

    async def run(self, progress=None) -> int:
        connect = self.connect or (lambda: grpc.aio.insecure_channel(self.address, options=channel_options()))
        async with connect() as channel:
            inputs, outputs = await self.signature(channel)
            self.chunk_rows = self.chunk_rows or chunk_rows_for(inputs)
            if too_large := unrecorded_inputs(inputs, self.chunk_rows):
                print(f"meshserve: warning: chunks of {self.chunk_rows:,} rows make input {', '.join(too_large)} "
                      "larger than MESHSERVE_RECORDS_MAX_TENSOR_BYTES, so their records keep only a marker in place "
                      "of the values; leave --chunk-rows out to fit them", file=sys.stderr)
            self.parts_dir.mkdir(parents=True, exist_ok=True)
            job = self.job_id
            marker = self.parts_dir / "job"
            if marker.exists() and marker.read_text() != job:
                raise BatchError(f"{self.parts_dir} holds parts of another job (the input, model, version or chunk "
                                 "size changed); remove it to start over")
            marker.write_text(job)
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            slots = asyncio.Semaphore(self.in_flight)
            failures: list[BaseException] = []
            tasks = []
            plans = None
            start = 0
            for table in self.chunks():
                if plans is None:
                    plans = plan_inputs(inputs, table.column_names)
                begin, start = start, start + table.num_rows
                if self.part_path(begin).exists():
                    if progress is not None:
                        progress.advance(table.num_rows)
                    continue
                if failures:
                    break
                await slots.acquire()
                tasks.append(asyncio.create_task(self._score(stub, table, plans, outputs, begin, f"{job}-{begin}",
                                                             slots, failures, progress)))
            await asyncio.gather(*tasks)
            if failures:
                raise failures[0]
        return self.join()

    async def _score(self, stub, table, plans, outputs, start, request_id, slots, failures, progress) -> None:
        try:
            for attempt in range(5):
                try:
                    answer = await stub.ModelInfer(self.request(table, plans, request_id), timeout=self.timeout_s)
                    break
                except grpc.aio.AioRpcError as exc:
                    # A replica restarting or a shed request: wait and try the same chunk again.
                    if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED) or \
                            attempt == 4:
                        raise BatchError(f"rows {start}..{start + table.num_rows - 1}: {exc.code().name}: "
                                         f"{exc.details()}") from None
                    await asyncio.sleep(0.5 * 2 ** attempt)
            await asyncio.to_thread(self.write_part, start, table, answer, outputs, request_id)
            if progress is not None:
                progress.advance(table.num_rows)
        except BaseException as exc:
            failures.append(exc)
        finally:
            slots.release()

    def join(self) -> int:
        parts = sorted(self.parts_dir.glob("*.arrow"))
        fmt = self.format_of(self.output_path)
        temporary = self.output_path.with_name(f".{self.output_path.name}.tmp")
        rows = 0
        writer, schema = None, None
        try:
            for part in parts:
                table = feather.read_table(part, memory_map=True)
                rows += table.num_rows
                schema = schema or table.schema  # the first chunk's types hold for every chunk
                writer = writer or TableWriter(temporary, schema, fmt)
                writer.write(table.cast(schema))
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            temporary.write_text("")
        os.replace(temporary, self.output_path)
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        return rows
