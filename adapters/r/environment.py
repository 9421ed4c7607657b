"""What R environment a model was packaged with, and whether the running one matches.

`meshserve package` records the R version and the version of every package loaded once
the model is ready to score (its namespace imports included). At load, each recorded
version is compared with the installed one: a difference is a warning naming the package
and both versions, or a refusal under `r.strict_environment` / `environment.strict`.
Both run on the R thread.
"""

from __future__ import annotations

from typing import Any

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage

R_VERSIONS = r"""
function(names) {
  vapply(names, function(p) {
    # The version exactly as the package's DESCRIPTION writes it (4.7-1.1, not 4.7.1.1).
    v <- suppressWarnings(utils::packageDescription(p, fields = "Version"))
    if (is.na(v)) "not installed" else as.character(v)
  }, character(1))
}
"""


def running_r_version() -> str:
    import rpy2.robjects as ro

    return str(ro.r("paste(R.version$major, R.version$minor, sep = '.')")[0])


def capture_loaded_environment(package: ModelPackage, options: Any) -> dict[str, Any]:
    """Load the model as serving would, then list R and every loaded namespace's version."""
    import rpy2.robjects as ro

    from .columns import ColumnPlan
    from .model import RModel

    RModel.load(package, options, ColumnPlan.build(options, package)).release()
    names = sorted(str(n) for n in ro.r("loadedNamespaces()"))
    versions = _installed_versions(names)
    return {
        "r": {
            "version": running_r_version(),
            "version_string": str(ro.r("R.version.string")[0]),
            "platform": str(ro.r("R.version$platform")[0]),
            "packages": versions,
        }
    }


def check_environment(package: ModelPackage, options: Any) -> list[str]:
    """Differences between the recorded and the running R environment, as messages.

    Raises ManifestError listing them when the package asks for a strict match."""
    recorded = (package.manifest.environment or {}).get("r")
    if not recorded:
        return []
    differences = []
    want_r = str(recorded.get("version", ""))
    have_r = running_r_version()
    if want_r and want_r != have_r:
        differences.append(f"R: recorded {want_r}, running {have_r}")
    wanted = {str(k): str(v) for k, v in (recorded.get("packages") or {}).items()}
    installed = _installed_versions(sorted(wanted))
    for name, version in wanted.items():
        if installed[name] != version:
            differences.append(f"R package {name}: recorded {version}, running {installed[name]}")
    strict = options.strict_environment or bool((package.manifest.environment or {}).get("strict"))
    if differences and strict:
        raise ManifestError(
            str(package.manifest_path), "environment.r",
            "the running R environment differs from the recorded one (strict): " + "; ".join(differences),
            "install the recorded versions, or re-record with `meshserve package` after testing (see "
            "docs/r-guide.md, section '3. Record the environment')",
        )
    return [f"model {package.name}:{package.version}: {d}" for d in differences]


def _installed_versions(names: list[str]) -> dict[str, str]:
    import rpy2.robjects as ro

    if not names:
        return {}
    found = ro.r(R_VERSIONS)(ro.StrVector(names))
    return {name: str(v) for name, v in zip(names, found)}
