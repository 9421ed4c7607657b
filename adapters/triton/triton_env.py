"""Where the Triton server's own environment is: the virtual environment holding `nvidia-pytriton`.

That wheel carries the `tritonserver` binary, its Python backend and stubs, and the libraries they
link against (`nvidia_pytriton.libs`). It pins numpy<2, so it lives apart from meshserve's
environment (`.venv-triton`, built by scripts/setup.d/50-triton.sh); Triton is a separate process,
and its Python backend runs models with that environment's Python. Found, in order: the
`MESHSERVE_TRITON_ENV` setting, `.venv-triton` beside meshserve's environment, meshserve's own.
Nothing here imports pytriton.
"""

from __future__ import annotations

import functools
import importlib.metadata
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from meshserve.core.settings import get_settings

WHEEL = "nvidia-pytriton"


@dataclass(frozen=True)
class TritonEnvironment:
    prefix: Path  # the virtual environment's folder
    site_packages: Path  # where the pytriton package and nvidia_pytriton.libs are
    python_version: str  # "3.11": the Python its stub must be built for

    @property
    def bin(self) -> Path:
        return self.prefix / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    @property
    def pytriton(self) -> Path:
        return self.site_packages / "pytriton"

    @functools.cached_property
    def libdir(self) -> str:
        """That Python's LIBDIR (libpython), which the Python backend stub links against."""
        if self.prefix.resolve() == Path(sys.prefix).resolve():
            import sysconfig

            return sysconfig.get_config_var("LIBDIR") or ""
        result = subprocess.run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
                                capture_output=True, text=True, timeout=60)
        return result.stdout.strip() if result.returncode == 0 else ""


def _site_packages(prefix: Path) -> tuple[Path, str] | None:
    for candidate in sorted(prefix.glob("lib/python3.*/site-packages")):
        if (candidate / "pytriton").is_dir():
            return candidate, candidate.parent.name.removeprefix("python")
    return None


def candidates() -> list[Path]:
    configured = get_settings().triton_env
    if configured:
        return [Path(configured).expanduser()]
    return [Path(sys.prefix).parent / ".venv-triton", Path(sys.prefix)]


def triton_environment() -> TritonEnvironment | None:
    """The environment holding nvidia-pytriton, or None when none of the candidates does."""
    for prefix in candidates():
        found = _site_packages(prefix)
        if found is not None:
            return TritonEnvironment(prefix, found[0], found[1])
    return None


def pytriton_libs() -> Path | None:
    """The `nvidia_pytriton.libs` folder (libb64, libcudart, ... bundled with the wheel), wherever
    pytriton lives; for tools run beside Triton, such as perf_analyzer, on LD_LIBRARY_PATH."""
    environment = triton_environment()
    return environment.site_packages / "nvidia_pytriton.libs" if environment else None


def wheel_version() -> str | None:
    """Version of the nvidia-pytriton wheel (which fixes the tritonserver binary), or None."""
    environment = triton_environment()
    if environment is None:
        return None
    for dist in importlib.metadata.distributions(name=WHEEL, path=[str(environment.site_packages)]):
        return dist.version
    return None


def not_installed_message() -> str:
    where = " or ".join(str(p) for p in candidates())
    return (f"the tritonserver binary comes with the nvidia-pytriton wheel, which is in none of {where}: run "
            "scripts/setup.sh (it builds .venv-triton), or point MESHSERVE_TRITON_ENV at a virtual environment "
            "with `pip install nvidia-pytriton==0.7.0`")
