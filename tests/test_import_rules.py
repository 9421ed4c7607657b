"""The import rule: a part imports the ground floor (meshserve.core, meshserve.spec,
meshserve.observability, meshserve.v1) and the published modules of other parts, nothing else.

A part is a package under `meshserve` (meshserve.router, meshserve.envoy, meshserve.launcher,
meshserve.cli, ...), each sidecar (meshserve.sidecars.records, .drift, .compare, .reports) being
one of its own. What each part publishes is the list below; everything else in it is its
insides, free to change without another part noticing. A new cross-part need is met by adding
the name to a published module (or publishing a module here, in the same change), never by
reaching past it. Imports are read from the source with `ast` (nothing is imported), as
tests/test_import_graph.py reads them. Run `python -m pytest tests/test_import_rules.py`.
"""

from __future__ import annotations

from test_import_graph import ROOT, import_graph

GROUND = ("meshserve", "meshserve.core", "meshserve.spec", "meshserve.observability", "meshserve.v1")

# Each part's published modules: its interface to the other parts.
PUBLISHED = {
    # the router process and its arguments (the `meshserve router` command's too); calling its
    # servicer from HTTP (the REST binding's way, which the console shares)
    "meshserve.router": {"meshserve.router.server", "meshserve.router.arguments",
                         "meshserve.router.rest.servicer_calls"},
    # rendering Envoy's first configuration, programming it live, running it
    "meshserve.envoy": {"meshserve.envoy.render", "meshserve.envoy.routing", "meshserve.envoy.process"},
    # the adapter process and its arguments, the Runtime interface and its options; the Python
    # runtime's package (its folder holds the adapter's own requirements) and what may be asked
    # of a Python model without serving it
    "meshserve.adapters": {"meshserve.adapters", "meshserve.adapters.server", "meshserve.adapters.arguments",
                           "meshserve.adapters.runtime", "meshserve.adapters.python",
                           "meshserve.adapters.python.inspection"},
    # the record observer servers attach (kept light: adapters import it), the store and its query
    # API, and everything else other parts use of the records
    "meshserve.sidecars.records": {"meshserve.sidecars.records.observer", "meshserve.sidecars.records.store",
                                   "meshserve.sidecars.records.api"},
    "meshserve.sidecars.drift": {"meshserve.sidecars.drift.api"},
    "meshserve.sidecars.compare": {"meshserve.sidecars.compare.api"},
    "meshserve.sidecars.reports": {"meshserve.sidecars.reports", "meshserve.sidecars.reports.html"},
    "meshserve.launcher": {"meshserve.launcher.mesh"},  # `meshserve up`
    "meshserve.deploy": {"meshserve.deploy", "meshserve.deploy.gate", "meshserve.deploy.roles",
                         "meshserve.deploy.golden", "meshserve.deploy.provenance", "meshserve.deploy.data_files",
                         "meshserve.deploy.fresh_adapter"},
    "meshserve.environments": {"meshserve.environments.builder", "meshserve.environments.capture",
                               "meshserve.environments.environment_spec", "meshserve.environments.requirements"},
    "meshserve.importing": {"meshserve.importing.mlflow_package", "meshserve.importing.mlflow_registry",
                            "meshserve.importing.model_uri"},
    "meshserve.kubernetes": {"meshserve.kubernetes.render", "meshserve.kubernetes.envoy_config",
                             "meshserve.kubernetes.options", "meshserve.kubernetes.packages"},
    "meshserve.batch": {"meshserve.batch.job", "meshserve.batch.columns"},
    "meshserve.console": {"meshserve.console.routes"},  # the pages the router serves
    "meshserve.cli": set(),  # the top floor: nothing imports the command line
}


def part_of(module: str) -> str:
    names = module.split(".")
    if module in GROUND or ".".join(names[:2]) in GROUND:
        return ".".join(names[:2]) if len(names) > 1 else module
    return ".".join(names[:3]) if names[1] == "sidecars" and len(names) > 2 else ".".join(names[:2])


def reaches_into(importer: str, imported: str) -> bool:
    """Whether IMPORTER, importing IMPORTED, passes another part's published modules."""
    mine, theirs = part_of(importer), part_of(imported)
    if mine == theirs or theirs in GROUND:
        return False
    return imported not in PUBLISHED.get(theirs, set())


def violations(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{importer} imports {imported}, inside {part_of(imported)} "
                  f"(published: {', '.join(sorted(PUBLISHED.get(part_of(imported), ()))) or 'nothing'})"
                  for importer, imports in graph.items() for imported in imports if reaches_into(importer, imported))


def test_no_part_imports_another_parts_insides():
    found = violations(import_graph(ROOT))
    assert not found, "import the published module instead (or publish what is needed):\n" + "\n".join(found)


def test_every_published_module_exists():
    modules = set(import_graph(ROOT))
    missing = sorted(m for published in PUBLISHED.values() for m in published if m not in modules)
    assert not missing, f"published modules that do not exist: {missing}"


def test_the_rule_catches_a_reach_into_insides_and_lets_published_modules_through():
    graph = {"meshserve.router.control_plane.control_service": {"meshserve.envoy.rollouts", "meshserve.envoy.routing",
                                                                "meshserve.spec.run_folder"},
             "meshserve.sidecars.drift.monitor": {"meshserve.sidecars.drift.plan", "meshserve.sidecars.records.store"}}
    assert [line.split(",")[0] for line in violations(graph)] == [
        "meshserve.router.control_plane.control_service imports meshserve.envoy.rollouts"]


if __name__ == "__main__":
    print("\n".join(violations(import_graph(ROOT))) or "no part reaches into another's insides")
