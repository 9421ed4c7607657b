"""How to install an R package that a model needs and R cannot find, said for this machine.

Debian packages most of CRAN's well-used packages as `r-cran-<name in lower case>`; apt knows
whether this machine can install one (`apt-cache policy`, which reads the local package lists
and takes a few milliseconds). What Debian does not have is installed from source into a user
library, which needs no root.
"""

from __future__ import annotations

import shutil
import subprocess

APT_TIMEOUT_S = 5.0
USER_LIBRARY = "~/R/library"


def debian_name(package: str) -> str:
    return f"r-cran-{package.lower()}"


def install_hint(package: str) -> str:
    """The fix for `there is no package called 'PACKAGE'`, ending with where to read more."""
    debian = debian_name(package)
    apt_cache = shutil.which("apt-cache")
    if apt_cache is None:
        return f"install it: {from_source(package)} (this is not a Debian system: no apt-cache)"
    try:
        policy = subprocess.run([apt_cache, "policy", debian], capture_output=True, text=True,
                                timeout=APT_TIMEOUT_S, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return (f"check whether Debian has it with `apt-cache policy {debian}`: with a Candidate, run "
                f"`apt-get install -y --no-install-recommends {debian}`; without, {from_source(package)}")
    candidate = _candidate(policy)
    if candidate:
        return (f"install Debian's package: `apt-get install -y --no-install-recommends {debian}` (version "
                f"{candidate}; add it to scripts/setup.d/30-r.sh so every machine gets it)")
    return f"Debian has no {debian}; {from_source(package)}"


def from_source(package: str) -> str:
    return (f"install it from source into a user library: `mkdir -p {USER_LIBRARY} && R_LIBS_USER={USER_LIBRARY} "
            f"Rscript -e 'install.packages(\"{package}\", repos = \"https://cloud.r-project.org\")'` (or, with a "
            f"downloaded tarball, `R CMD INSTALL -l {USER_LIBRARY} {package}_VERSION.tar.gz`), then "
            f"`export R_LIBS_USER={USER_LIBRARY}` where meshserve runs")


def _candidate(policy: str) -> str | None:
    for line in policy.splitlines():
        key, _, value = line.strip().partition(":")
        if key == "Candidate":
            value = value.strip()
            return None if value in ("", "(none)") else value
    return None


def package_fix(name: str, exc: Exception) -> str:
    """The fix for R's failure to attach package NAME."""
    from .messages import GUIDE

    if "there is no package called" in str(exc):
        return f"{install_hint(name)} (see {GUIDE}, section 'Packages your model needs')"
    return (f"R's message says why; reinstall the package or the system libraries it names (see {GUIDE}, "
            "section 'Packages your model needs')")
