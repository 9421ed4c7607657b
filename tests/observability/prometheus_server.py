"""A real Prometheus server (Debian's `prometheus`) scraping a mesh through its file_sd targets file."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml
from conftest import free_port


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


class PrometheusServer:
    def __init__(self, targets_file: Path, folder: Path, scrape_interval_s: int = 1, rule_files: list[Path] = ()):
        config = folder / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": f"{scrape_interval_s}s", "evaluation_interval": f"{scrape_interval_s}s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [{"job_name": "meshserve",
                                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}]}],
        }))
        self.address = f"127.0.0.1:{free_port()}"
        self.log = open(folder / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [prometheus_binary(), f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address={self.address}", "--enable-feature=exemplar-storage"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _get(self, path: str, **params) -> dict:
        url = f"http://{self.address}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.load(answer)

    def query(self, promql: str) -> list[dict]:
        return self._get("/api/v1/query", query=promql)["data"]["result"]

    def scalar(self, promql: str) -> float:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else 0.0

    def by_label(self, promql: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(promql)}

    def exemplars(self, promql: str, seconds: float = 300) -> list[dict]:
        now = time.time()
        return self._get("/api/v1/query_exemplars", query=promql, start=now - seconds, end=now)["data"]

    def wait_until(self, check, timeout: float = 20.0, what: str = ""):
        """Poll CHECK() until it returns something true (Prometheus scrapes once a second)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = check()
                if last:
                    return last
            except OSError as exc:  # not listening yet
                last = exc
            time.sleep(0.5)
        raise AssertionError(f"Prometheus never showed {what or check} within {timeout} s (last: {last})")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
