"""What seeing every request costs: breast-cancer through the whole mesh (client -> Envoy ->
adapter, one hop) at concurrency 16, with tracing at 100% sampling plus every metric
and the per-feature statistics on, against the same mesh with all of it off, in one run.
Ratios are against the mesh with everything off. Goal: at most 10% lower throughput and at
most 10% higher p99.

Spans go over OTLP/gRPC to a receiver in a process of its own that counts them, as Jaeger
or a Collector would take them; a Prometheus-like scraper reads every /metrics endpoint at the
scrape interval compose/prometheus.yml ships (`--scrape-every` to change it), so the cost of
being scraped is in the figures too. CPU per request of each part
(Envoy, router, adapter, recorder, the span receiver) comes from /proc, steadier than time
on a shared machine.

    .venv/bin/python bench/bench_observability.py [--seconds 30] [--rounds 10] [--parts] [--scrape-every S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_envoy import MODEL_DIR, one_row_request  # noqa: E402
from conftest import start_mesh  # noqa: E402
from load import Result, merge_results, measure, table  # noqa: E402
from process_cpu import PartsCpu, cpu_table  # noqa: E402

CONCURRENCY = 16
OFF, ON = "everything off", "traces 100% + metrics"
METRICS_ONLY, TRACES_ONLY, ALL_STAGES = "metrics + features only", "traces 100% only", "traces, a span per stage"


def serve_counting_receiver() -> None:
    """The receiver process: an OTLP/gRPC TraceService that counts spans and prints the count on stdin's EOF."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as ts_grpc

    counts = {"spans": 0}

    class Counter(ts_grpc.TraceServiceServicer):
        def Export(self, request, context):
            counts["spans"] += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
            return ts.ExportTraceServiceResponse()

    server = grpc.server(ThreadPoolExecutor(4))
    ts_grpc.add_TraceServiceServicer_to_server(Counter(), server)
    print(server.add_insecure_port("127.0.0.1:0"), flush=True)
    server.start()
    sys.stdin.read()
    print(counts["spans"], flush=True)


def shipped_scrape_interval() -> float:
    """The scrape interval of the Prometheus configuration meshserve ships."""
    config = yaml.safe_load((ROOT / "compose" / "prometheus.yml").read_text())
    return float(str(config["global"]["scrape_interval"]).rstrip("s"))


class Scraper(threading.Thread):
    """Reads every target of a mesh's file_sd file once a second, as Prometheus would."""

    def __init__(self, targets_file: Path, every_s: float):
        super().__init__(daemon=True)
        self.targets_file, self.every_s, self.stopped, self.scrapes = targets_file, every_s, threading.Event(), 0

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            for group in json.loads(self.targets_file.read_text()):
                path = group["labels"].get("__metrics_path__", "/metrics")
                for target in group["targets"]:
                    try:
                        urllib.request.urlopen(f"http://{target}{path}", timeout=2).read()
                        self.scrapes += 1
                    except OSError:
                        pass


async def run(seconds: float, rounds: int, parts: bool, scrape_every_s: float, sample: float = 1.0) -> None:
    request = one_row_request()
    receiver = subprocess.Popen([sys.executable, __file__, "--receiver"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    port = int(receiver.stdout.readline())
    run_dir = Path(subprocess.check_output(["mktemp", "-d"], text=True).strip())
    traces = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
              "OTEL_TRACES_SAMPLER": "parentbased_always_on"}
    if sample < 1.0:
        traces.update(OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG=str(sample))
    meshes = {
        OFF: start_mesh(MODEL_DIR, env={"MESHSERVE_METRICS": "false", "OTEL_TRACES_EXPORTER": "none"}),
        ON: start_mesh(MODEL_DIR, "--run-dir", str(run_dir), env=traces),
    }
    if parts:  # where the cost goes: each half alone
        meshes[METRICS_ONLY] = start_mesh(MODEL_DIR, env={"OTEL_TRACES_EXPORTER": "none"})
        meshes[TRACES_ONLY] = start_mesh(MODEL_DIR, env={**traces, "MESHSERVE_METRICS": "false"})
        meshes[ALL_STAGES] = start_mesh(MODEL_DIR, env={**traces, "MESHSERVE_METRICS": "false",
                                                        "MESHSERVE_TRACE_STAGES": "true"})
    scraper = Scraper(run_dir / "prometheus-targets.json", scrape_every_s)
    scraper.start()
    merged: dict[str, Result] = {}
    cpus = {label: PartsCpu(mesh.proc.pid, *([receiver.pid] if label not in (OFF, METRICS_ONLY) else []))
            for label, mesh in meshes.items()}
    cpu_used: dict[str, tuple[dict[str, float], int]] = {}
    for label, mesh in meshes.items():
        await measure(label, mesh.address, request, CONCURRENCY, 0.5, warmup_s=0)
    try:
        # Short slices in alternating order, so load from elsewhere on a shared machine lands on both.
        for round_number in range(rounds):
            order = list(meshes) if round_number % 2 == 0 else list(meshes)[::-1]
            for label in order:
                print(f"round {round_number + 1}/{rounds}: {label}", flush=True)
                cpus[label].mark()
                part = await measure(label, meshes[label].address, request, CONCURRENCY, seconds / rounds,
                                     warmup_s=0)
                used = cpus[label].used()
                merged[label] = merge_results(merged.get(label), part)
                before, requests = cpu_used.get(label, ({}, 0))
                cpu_used[label] = ({p: before.get(p, 0.0) + used.get(p, 0.0) for p in {*before, *used}},
                                   requests + part.requests + part.errors)
        await asyncio.sleep(6)  # Envoy sends its spans every 5 s
    finally:
        scraper.stopped.set()
        for mesh in meshes.values():
            mesh.stop()
        spans, _ = receiver.communicate("", timeout=30)
    off, on = merged[OFF], merged[ON]
    print()
    print(f"breast-cancer through the whole mesh, one row per request, concurrency {CONCURRENCY}, "
          f"{seconds:.0f} s per target in {rounds} slices (ratios against everything off)")
    print(table([merged[label] for label in meshes], OFF))
    print()
    print("CPU per request (microseconds, from /proc; 'receiver' is the span receiver, standing in for Jaeger)")
    print(cpu_table(cpu_used, OFF))
    if sample < 1.0:
        print(f"'{ON}' samples {sample:g} of the traces (OTEL_TRACES_SAMPLER=parentbased_traceidratio)")
    print(f"scraped every {scrape_every_s:g} s; throughput ratio {on.throughput / off.throughput:.3f}, p99 ratio {on.p99_ms / off.p99_ms:.3f}; "
          f"spans received {int(spans.strip() or 0)} for {on.requests} traced requests (plus warm-ups); "
          f"{scraper.scrapes} scrapes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measuring time per target")
    parser.add_argument("--rounds", type=int, default=10, help="slices the measuring time is cut into")
    parser.add_argument("--parts", action="store_true", help="also measure metrics alone, traces alone, and traces with a span for every adapter stage")
    parser.add_argument("--scrape-every", type=float, default=None,
                        help="seconds between scrapes (default: compose/prometheus.yml's scrape_interval)")
    parser.add_argument("--sample", type=float, default=1.0,
                        help="share of traces sampled where they start (default 1: every request)")
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver:
        serve_counting_receiver()
        return
    asyncio.run(run(args.seconds, args.rounds, args.parts, args.scrape_every or shipped_scrape_interval(), args.sample))


if __name__ == "__main__":
    main()
