"""`meshserve k8s render`: the manifests a cluster gets from the same spec `meshserve up` runs.

Every rendered object is checked by the Kubernetes schemas (`kubernetes-validate --strict`,
offline), the Envoy configuration inside its ConfigMap by the real Envoy binary, and the set
of objects against what the spec says: one Deployment per variant, a GPU for Triton, an
autoscaler for the router, and nothing public but Envoy's front.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path, PurePosixPath

import kubernetes_validate
import pytest
import yaml
from conftest import meshserve_argv

from meshserve.envoy.process import validate_config
from meshserve.envoy.render import RenderedConfig
from meshserve.kubernetes.envoy_config import BOOTSTRAP_KEY, CLUSTERS_KEY, ROUTES_KEY
from meshserve.kubernetes.naming import ENVOY_CONFIG, FRONT_SERVICE, ROUTER_NAME, variant_name
from meshserve.kubernetes.options import ClusterOptions
from meshserve.kubernetes.packages import read_packages
from meshserve.kubernetes.render import ClusterManifests, render_cluster
from meshserve.spec.deployment_spec import load_spec, parse_spec, resolve_spec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
RENDERED_EXAMPLE = REPO / "compose" / "kubernetes"
# Native sidecars (the recorder) are on by default from 1.29 and GA in 1.33; check that and the newest.
KUBERNETES_VERSIONS = ["1.33.0", kubernetes_validate.latest_version()]


def render_folder(models_dir: Path, spec: dict | None = None, **options) -> ClusterManifests:
    cluster = ClusterOptions(**options)
    packages = read_packages(models_dir, cluster.models_root)
    available: dict[str, set[str]] = {}
    for package in packages:
        available.setdefault(package.name, set()).add(package.version)
    parsed = parse_spec(spec, "test.yaml") if spec is not None else load_spec(models_dir / "meshserve.yaml")
    return render_cluster(resolve_spec(parsed, available), packages, cluster)


def of_kind(manifests: ClusterManifests, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in manifests.objects() if o["kind"] == kind}


def pod_spec(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]


def write_package(root: Path, folder: str, name: str, version: str, runtime: str = "python") -> None:
    (root / folder).mkdir(parents=True)
    (root / folder / "model.yaml").write_text(yaml.safe_dump({
        "name": name, "version": version, "runtime": runtime, "entrypoint": "model.joblib",
        "signature": {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}],
                      "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 1]}]}}))


@pytest.fixture(scope="module")
def examples() -> ClusterManifests:
    return render_folder(EXAMPLES)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_passes_the_kubernetes_schemas_strictly(examples, version):
    for obj in examples.objects():
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_kubernetes_validate_command_accepts_the_rendered_example_files():
    """The files as `kubectl apply -f compose/kubernetes` reads them, through the tool's own command."""
    command = Path(sys.executable).with_name("kubernetes-validate")
    files = sorted(str(p) for p in RENDERED_EXAMPLE.glob("*.yaml"))
    result = subprocess.run([str(command), "--strict", "--quiet", "-k", KUBERNETES_VERSIONS[0], *files],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_catches_a_misspelled_field(examples):
    deployment = dict(of_kind(examples, "Deployment")[ROUTER_NAME])
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_envoy_configuration_in_the_configmap_passes_envoy_validate(examples):
    data = of_kind(examples, "ConfigMap")[ENVOY_CONFIG]["data"]
    config = RenderedConfig(bootstrap=yaml.safe_load(data[BOOTSTRAP_KEY]), clusters=yaml.safe_load(data[CLUSTERS_KEY]),
                            routes=yaml.safe_load(data[ROUTES_KEY]))
    validate_config(config.inlined())
    listeners = {l["name"]: l["address"]["socket_address"] for l in config.bootstrap["static_resources"]["listeners"]}
    assert listeners["front"]["address"] == "0.0.0.0"
    assert config.bootstrap["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    # Upstreams are headless Services resolved by DNS, one endpoint per ready pod.
    clusters = config.clusters["resources"] + config.bootstrap["static_resources"]["clusters"]
    assert {c["type"] for c in clusters if "type" in c} == {"STRICT_DNS"}
    hosts = {e["endpoint"]["address"]["socket_address"]["address"]
             for c in clusters for g in c["load_assignment"]["endpoints"] for e in g["lb_endpoints"]}
    assert f"{variant_name('breast-cancer', '2')}.meshserve.svc.cluster.local" in hosts
    assert f"{ROUTER_NAME}.meshserve.svc.cluster.local" in hosts


def test_rest_reaches_the_routers_http_port_through_the_front_and_probes_use_it(examples, tmp_path):
    data = of_kind(examples, "ConfigMap")[ENVOY_CONFIG]["data"]
    bootstrap = yaml.safe_load(data[BOOTSTRAP_KEY])
    rest = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}["router_rest"]
    [endpoint] = rest["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["socket_address"] == {
        "address": f"{ROUTER_NAME}.meshserve.svc.cluster.local", "port_value": 8000}
    router = of_kind(examples, "Deployment")[ROUTER_NAME]
    assert "--rest-listen" in pod_spec(router)["containers"][0]["args"]
    assert {p["port"]: p["appProtocol"] for p in of_kind(examples, "Service")[ROUTER_NAME]["spec"]["ports"]} == {
        8001: "kubernetes.io/h2c", 8000: "http"}
    ingress = of_kind(examples, "NetworkPolicy")[f"{ROUTER_NAME}-ingress"]["spec"]["ingress"]
    assert sorted(rule["ports"][0]["port"] for rule in ingress) == [8000, 8001]
    envoy = pod_spec(of_kind(examples, "Deployment")["meshserve-envoy"])["containers"][0]
    assert envoy["readinessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8001, "scheme": "HTTP"}
    write_package(tmp_path, "m", "m", "1")
    (tmp_path / "front.pem").write_text("")
    secured = render_folder(tmp_path, {"security": {"tls": {"certificate": "front.pem", "private_key": "front.pem"}}})
    envoy = pod_spec(of_kind(secured, "Deployment")["meshserve-envoy"])["containers"][0]
    assert envoy["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_the_watched_files_are_where_the_envoy_pod_mounts_them(examples):
    data = of_kind(examples, "ConfigMap")[ENVOY_CONFIG]["data"]
    bootstrap = yaml.safe_load(data[BOOTSTRAP_KEY])
    envoy = pod_spec(of_kind(examples, "Deployment")["meshserve-envoy"])
    mounts = {m["name"]: m["mountPath"] for m in envoy["containers"][0]["volumeMounts"]}
    items = {v["name"]: v["configMap"]["items"][0]["path"] for v in envoy["volumes"]}
    mounted = {f"{mounts[name]}/{path}" for name, path in items.items()}
    watched = bootstrap["dynamic_resources"]["cds_config"]["path_config_source"]
    assert watched["path"] in mounted and watched["watched_directory"]["path"] == str(Path(watched["path"]).parent)
    assert envoy["containers"][0]["args"][1] in mounted  # -c bootstrap


def test_the_objects_are_what_the_examples_spec_implies(examples):
    spec = resolve_spec(load_spec(EXAMPLES / "meshserve.yaml"),
                        {p.name: {q.version for q in read_packages(EXAMPLES, PurePosixPath("/m")) if q.name == p.name}
                         for p in read_packages(EXAMPLES, PurePosixPath("/m"))})
    variants = {variant_name(m, v): n for m, d in spec.models.items() for v, n in d.replicas.items()}
    deployments = of_kind(examples, "Deployment")
    assert set(deployments) == set(variants) | {ROUTER_NAME, "meshserve-envoy"}
    for name, replicas in variants.items():
        assert deployments[name]["spec"]["replicas"] == replicas
        container = pod_spec(deployments[name])["containers"][0]
        assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(container)
        assert container["readinessProbe"]["grpc"]["port"] == 8001
        assert container["resources"]["requests"]["cpu"]
    gpu = {name for name, d in deployments.items()
           if "nvidia.com/gpu" in pod_spec(d)["containers"][0]["resources"].get("limits", {})}
    assert gpu == {variant_name("digits-triton", "1")}
    # The router's count belongs to its autoscaler; every Deployment has a disruption budget.
    assert "replicas" not in deployments[ROUTER_NAME]["spec"]
    hpa = of_kind(examples, "HorizontalPodAutoscaler")
    assert [h["spec"]["scaleTargetRef"]["name"] for h in hpa.values()] == [ROUTER_NAME]
    assert set(of_kind(examples, "PodDisruptionBudget")) == set(deployments)
    services = of_kind(examples, "Service")
    assert {n for n, s in services.items() if s["spec"].get("type") == "LoadBalancer"} == {FRONT_SERVICE}
    assert all(s["spec"].get("clusterIP") == "None" for n, s in services.items() if n in variants)


def test_replicas_and_shadows_from_the_spec_become_deployments(tmp_path):
    for version in ("1", "2", "3"):
        write_package(tmp_path, f"iris-{version}", "iris", version)
    manifests = render_folder(tmp_path, {"models": {"iris": {
        "variants": [{"version": "1", "weight": 90, "replicas": 3}, {"version": "2", "weight": 10}],
        "shadows": [{"version": "3", "fraction": 0.5, "replicas": 2}]}}})
    replicas = {n: d["spec"].get("replicas") for n, d in of_kind(manifests, "Deployment").items()}
    assert replicas == {variant_name("iris", "1"): 3, variant_name("iris", "2"): 1, variant_name("iris", "3"): 2,
                        ROUTER_NAME: None, "meshserve-envoy": 2}
    for obj in manifests.objects():
        kubernetes_validate.validate(obj, KUBERNETES_VERSIONS[-1], strict=True)


def test_a_rollout_changes_only_the_route_file_and_new_variants_roll_envoy(tmp_path):
    for version in ("1", "2", "3"):
        write_package(tmp_path, f"iris-{version}", "iris", version)

    def envoy(weights: dict, shadows: list | None = None) -> tuple[dict, str]:
        spec = {"models": {"iris": {"variants": [{"version": v, "weight": w} for v, w in weights.items()],
                                    "shadows": shadows or []}}}
        manifests = render_folder(tmp_path, spec)
        digest = of_kind(manifests, "Deployment")["meshserve-envoy"]["spec"]["template"]["metadata"]["annotations"]
        return of_kind(manifests, "ConfigMap")[ENVOY_CONFIG]["data"], digest["meshserve.io/envoy-restart-digest"]

    before, digest = envoy({"1": 90, "2": 10})
    after, same_digest = envoy({"1": 50, "2": 50})
    assert before[ROUTES_KEY] != after[ROUTES_KEY]
    assert (before[CLUSTERS_KEY], before[BOOTSTRAP_KEY], digest) == (after[CLUSTERS_KEY], after[BOOTSTRAP_KEY], same_digest)
    _, new_variant_digest = envoy({"1": 50, "2": 50}, [{"version": "3", "fraction": 0.1}])
    assert new_variant_digest != digest


def test_records_go_to_the_specs_postgresql_through_a_secret(tmp_path):
    write_package(tmp_path, "iris-1", "iris", "1")
    url = "postgresql://meshserve:pw@db.example:5432/records"
    manifests = render_folder(tmp_path, {"models": {}, "records": {"store": url, "retention": {"days": 7}}},
                              models_root=PurePosixPath("/models"))
    secrets = of_kind(manifests, "Secret")
    assert secrets["meshserve-records"]["stringData"]["store-url"] == url
    adapter = pod_spec(of_kind(manifests, "Deployment")[variant_name("iris", "1")])
    (recorder,) = adapter["initContainers"]
    assert recorder["restartPolicy"] == "Always" and adapter["shareProcessNamespace"] is True
    assert recorder["args"][-2:] == ["--retention-days", "7.0"]
    # Pods share the store and their spool file names: each recorder keeps its offsets apart.
    assert recorder["args"][recorder["args"].index("--source") + 1] == "$(POD_NAMESPACE)/$(POD_NAME)"
    table = yaml.safe_load(of_kind(manifests, "ConfigMap")["meshserve-models"]["data"]["models.json"])
    assert table["control"]["records_store"] == url
    assert table["mesh_address"] == "meshserve-envoy-mesh.meshserve.svc.cluster.local:8002"
    assert table["models"][0]["versions"][0]["package"] == "/models/iris-1"


def test_a_one_machine_store_asks_for_a_secret_and_no_records_means_no_recorder(tmp_path):
    write_package(tmp_path, "iris-1", "iris", "1")
    sqlite = render_folder(tmp_path, {"models": {}})
    assert not of_kind(sqlite, "Secret") and any("create secret generic" in n for n in sqlite.notes)
    off = render_folder(tmp_path, {"models": {}, "records": {"enabled": False}})
    adapter = pod_spec(of_kind(off, "Deployment")[variant_name("iris", "1")])
    assert "initContainers" not in adapter and "env" in adapter["containers"][0]
    assert not any(e["name"].startswith("MESHSERVE_RECORDS") for e in adapter["containers"][0]["env"])


def test_names_that_are_not_dns_labels_get_distinct_safe_names():
    names = {variant_name("Iris_Species", "1.0"), variant_name("iris-species", "1-0"), variant_name("x" * 80, "1")}
    assert len(names) == 3
    assert all(len(n) <= 63 and n[0].isalpha() and n.replace("-", "").isalnum() and n == n.lower() for n in names)


def test_the_cli_writes_the_files_and_removes_stale_ones(tmp_path):
    models = tmp_path / "models"
    for version in ("1", "2"):
        write_package(models, f"iris-{version}", "iris", version)
    (models / "meshserve.yaml").write_text(yaml.safe_dump({"models": {"iris": {"variants": [
        {"version": "1", "weight": 100}, {"version": "2", "weight": 0}]}}}))
    out = tmp_path / "out"
    run = subprocess.run(meshserve_argv("k8s", "render", str(models), "-o", str(out), "--namespace", "ml",
                                        "--image", "registry.example/meshserve:1.0", "--validate",
                                        "--env", "OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317"),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "envoy --mode validate: OK" in run.stdout
    assert (out / f"variant-{variant_name('iris', '2')}.yaml").exists()
    docs = [d for f in out.glob("*.yaml") for d in yaml.safe_load_all(f.read_text())]
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"ml"}
    router = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == ROUTER_NAME)
    container = router["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/meshserve:1.0"
    assert {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://collector:4317"} in container["env"]
    (models / "meshserve.yaml").write_text(yaml.safe_dump({"models": {"iris": {"variants": [
        {"version": "1", "weight": 100}]}}}))
    (models / "iris-2" / "model.yaml").unlink()
    assert subprocess.run(meshserve_argv("k8s", "render", str(models), "-o", str(out)),
                          capture_output=True, timeout=120).returncode == 0
    assert not (out / f"variant-{variant_name('iris', '2')}.yaml").exists()


def test_a_bad_spec_is_refused_with_file_field_and_fix(tmp_path):
    write_package(tmp_path, "iris-1", "iris", "1")
    (tmp_path / "meshserve.yaml").write_text("models:\n  iris:\n    variants: [{version: '9', weight: 1}]\n")
    run = subprocess.run(meshserve_argv("k8s", "render", str(tmp_path), "-o", str(tmp_path / "out")),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "meshserve.yaml: field 'models.iris.variants'" in run.stderr and "Fix:" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_rendered_example_in_compose_kubernetes_is_fresh(examples):
    """compose/kubernetes/ is `meshserve k8s render examples -o compose/kubernetes`; re-render it when this fails."""
    committed = {p.name: list(yaml.safe_load_all(p.read_text())) for p in RENDERED_EXAMPLE.glob("*.yaml")}
    assert committed == examples.files, "stale: run `meshserve k8s render examples -o compose/kubernetes`"


def test_a_replica_range_becomes_an_autoscaler_that_owns_the_variant_count(tmp_path):
    write_package(tmp_path, "a", "scoring", "1")
    write_package(tmp_path, "b", "scoring", "2")
    manifests = render_folder(tmp_path, {"models": {"scoring": {"variants": [
        {"version": "1", "weight": 1, "replicas": {"min": 2, "max": 6}}, {"version": "2", "weight": 1, "replicas": 3}]}}})
    deployments = of_kind(manifests, "Deployment")
    autoscalers = of_kind(manifests, "HorizontalPodAutoscaler")
    ranged, fixed = variant_name("scoring", "1"), variant_name("scoring", "2")
    assert "replicas" not in deployments[ranged]["spec"]  # `kubectl apply` must not reset the autoscaler's count
    assert deployments[fixed]["spec"]["replicas"] == 3 and fixed not in autoscalers
    scaler = autoscalers[ranged]["spec"]
    assert (scaler["minReplicas"], scaler["maxReplicas"]) == (2, 6)
    assert scaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": ranged}
    for version in KUBERNETES_VERSIONS:
        for obj in manifests.objects():
            kubernetes_validate.validate(obj, version, strict=True)
