"""Malformed inference requests of every kind an attacker or an unlucky client sends, as raw
bytes, with the statuses each may get. Shared by tests/security/test_fuzz.py (bounded, in the
suite) and bench/bench_fuzz.py (the long run)."""

from __future__ import annotations

import dataclasses
import functools
import os
import random
import struct
import threading
import time

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb

MODEL, INPUT = "iris-species", "measurements"
# Every answer to a bad request must be one of these (OK where a mutation happens to be valid).
CLEAR = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "UNAUTHENTICATED", "PERMISSION_DENIED"}


def good_request(rows: int = 1) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name=INPUT, datatype="FP32", shape=[rows, 4])
    request.raw_input_contents.append(np.full((rows, 4), 1.5, np.float32).tobytes())
    return request


def _values(values) -> pb.ModelInferRequest:
    array = np.asarray(values, np.float32).reshape(-1, 4)
    request = pb.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name=INPUT, datatype="FP32", shape=list(array.shape))
    request.raw_input_contents.append(array.tobytes())
    return request


def random_bytes(rng: random.Random) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))


def mutated(rng: random.Random) -> bytes:
    data = bytearray(good_request(rng.randint(1, 3)).SerializeToString())
    for _ in range(rng.randint(1, 6)):
        data[rng.randrange(len(data))] = rng.getrandbits(8)
    if rng.random() < 0.3:
        del data[rng.randrange(len(data)):]
    return bytes(data)


def lying_bytes(rng: random.Random) -> bytes:
    request = pb.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name=INPUT, datatype=rng.choice(["BYTES", "FP32"]), shape=[2 ** rng.randint(20, 31), 4])
    request.raw_input_contents.append(struct.pack("<I", 1) + b"x")
    return request.SerializeToString()


def huge_name(rng: random.Random) -> bytes:
    name = "n" * rng.randint(30_000, 60_000)
    request = good_request()
    which = rng.choice(["model_name", "model_version", "input"])
    if which == "input":
        request.inputs[0].name = name
    else:
        setattr(request, which, name)
    return request.SerializeToString()


def odd_name(rng: random.Random) -> bytes:
    request = good_request()
    request.model_name = rng.choice(["", "\x00", "ir\nis", "../../etc/passwd", "iris-species\u202e", "%s%n"])
    return request.SerializeToString()


def odd_id(rng: random.Random) -> bytes:
    request = good_request()
    request.id = rng.choice(["a\x11b", "\x00", "x" * 60_000, "snow\u2603", "line\nbreak"])
    return request.SerializeToString()


def many_inputs(rng: random.Random) -> bytes:
    return _many_inputs(rng.choice([2, 500, 40_000]))


@functools.lru_cache(maxsize=None)
def _many_inputs(count: int) -> bytes:  # 40,000 inputs take 23 ms to build: build each size once
    request = pb.ModelInferRequest(model_name=MODEL)
    for i in range(count):
        request.inputs.add(name=f"{INPUT}{i % 1000 or ''}", datatype="FP32", shape=[1, 4])
    return request.SerializeToString()


def many_outputs(rng: random.Random) -> bytes:
    request = good_request()
    for _ in range(rng.choice([2, 1000])):
        request.outputs.add(name="species")
    return request.SerializeToString()


def mixed_contents(rng: random.Random) -> bytes:
    request = good_request()
    request.inputs[0].contents.fp32_contents.extend([9.0] * 4)
    return request.SerializeToString()


def bad_values(rng: random.Random) -> bytes:
    kind = rng.choice(["nan", "inf", "-inf", "1e308", "zero rows"])
    if kind == "zero rows":
        return _values(np.empty((0, 4))).SerializeToString()
    if kind == "1e308":  # breast-cancer takes FP64, where 1e308 is finite but overflows float32
        request = pb.ModelInferRequest(model_name="breast-cancer")
        request.inputs.add(name="features", datatype="FP64", shape=[1, 30])
        request.raw_input_contents.append(np.full((1, 30), 1e308).tobytes())
        return request.SerializeToString()
    return _values([1, 2, 3, float(kind)]).SerializeToString()


def rows_mismatch(rng: random.Random) -> bytes:
    request = good_request(2)
    request.raw_input_contents[0] = request.raw_input_contents[0][:-rng.randint(1, 8)]
    return request.SerializeToString()


KINDS = {f.__name__: f for f in (random_bytes, mutated, lying_bytes, huge_name, odd_name, odd_id, many_inputs, many_outputs,
                                 mixed_contents, bad_values, rows_mismatch)}


def malformed(rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(list(KINDS))
    return kind, KINDS[kind](rng)


def resident_bytes(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def descendants(pid: int) -> list[int]:
    """Every process below PID (a mesh's adapters, router and Envoy), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclasses.dataclass
class FuzzResult:
    bad_requests: int
    seconds: float
    good_answers: int
    good_failures: list[str]
    statuses: dict[str, dict[str, int]]  # kind -> status name -> count
    memory_before: dict[int, int]  # pid -> resident bytes, after warm-up
    memory_after: dict[int, int]
    longest_details: int
    names: dict[int, str]  # pid -> which process (router, adapter, envoy, recorder)
    samples: dict[str, str]  # "kind status" -> the first message of that answer, to read what went wrong

    @property
    def unclear(self) -> dict[str, dict[str, int]]:
        return {kind: codes for kind, codes in self.statuses.items() if set(codes) - CLEAR}

    def growth_mib(self) -> dict[str, float]:
        return {f"{self.names.get(pid, '?')}[{pid}]": round((self.memory_after.get(pid, 0) - rss) / 2**20, 1)
                for pid, rss in self.memory_before.items()}


def process_name(pid: int) -> str:
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    except OSError:
        return "gone"
    for marker, name in ((b"meshserve.router", "router"), (b"meshserve.adapters", "adapter"),
                         (b"meshserve.envoy", "envoy"), (b"recorder", "recorder")):
        if any(marker in part for part in argv):
            return name
    return os.path.basename(argv[0].decode(errors="replace")) or "?"


WARM_UP_BAD = 300


def fuzz(address: str, mesh_pid: int, bad_requests: int, good_clients: int = 4, good_pause_s: float = 0.02,
         seed: int = 18, seconds: float | None = None) -> FuzzResult:
    """Send BAD_REQUESTS malformed requests (or for SECONDS) while GOOD_CLIENTS send valid ones."""
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    good_failures: list[str] = []
    good_answers = [0]
    statuses: dict[str, dict[str, int]] = {}
    stop = threading.Event()

    def memory() -> dict[int, int]:
        return {pid: resident_bytes(pid) for pid in descendants(mesh_pid)}

    def well_behaved() -> None:
        with grpc.insecure_channel(address, options=options) as channel:
            infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                        request_serializer=pb.ModelInferRequest.SerializeToString,
                                        response_deserializer=pb.ModelInferResponse.FromString)
            while not stop.is_set():
                try:
                    if infer(good_request(), timeout=10).outputs[0].name != "species":
                        good_failures.append("an answer without species")
                    good_answers[0] += 1
                except grpc.RpcError as exc:
                    good_failures.append(f"{exc.code().name}: {exc.details()}")
                stop.wait(good_pause_s)

    longest = 0
    samples: dict[str, str] = {}
    with grpc.insecure_channel(address, options=options) as channel:
        raw_infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        for _ in range(50):
            raw_infer(good_request().SerializeToString(), timeout=10)
        clients = [threading.Thread(target=well_behaved) for _ in range(good_clients)]
        for client in clients:
            client.start()
        # Warm up with malformed requests too, so memory is measured from the steady state of this
        # traffic: what the allocator keeps for reuse after the first large messages is not a leak.
        warm = random.Random(seed + 1)
        for _ in range(WARM_UP_BAD):
            try:
                raw_infer(malformed(warm)[1], timeout=10)
            except grpc.RpcError:
                pass
        before = memory()
        names = {pid: process_name(pid) for pid in before}
        rng = random.Random(seed)
        started = time.monotonic()
        sent = 0
        while (sent < bad_requests) if seconds is None else (time.monotonic() - started < seconds):
            kind, data = malformed(rng)
            try:
                raw_infer(data, timeout=10)
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
                longest = max(longest, len(exc.details() or ""))
                samples.setdefault(f"{kind} {code}", (exc.details() or "")[:300])
            statuses.setdefault(kind, {}).setdefault(code, 0)
            statuses[kind][code] += 1
            sent += 1
        elapsed = time.monotonic() - started
        stop.set()
        for client in clients:
            client.join()
        time.sleep(0.5)  # let the last answers' buffers go back
        after = memory()
    return FuzzResult(sent, elapsed, good_answers[0], good_failures, statuses, before, after, longest, names,
                      samples)
