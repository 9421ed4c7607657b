"""The table of model worlds: the one place a runtime is named.

Each row says where a runtime's `Runtime` class and its options class (the model.yaml section
named after it, which also carries the runtime's facts: working slots, pod resources, ...) live,
as import paths resolved only when asked for. So reading a manifest never starts R, a JVM or
Triton, and this table, on the ground floor, imports nothing of the adapters it names.

A runtime outside meshserve adds its row without changing meshserve: its distribution declares
an entry point in the group `meshserve.runtimes`, named after the runtime, whose object is its
`RuntimeEntry`; every meshserve process (the launcher, the router, each adapter) finds it the
same way. A built-in name cannot be taken over.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

ENTRY_POINT_GROUP = "meshserve.runtimes"


@dataclass(frozen=True)
class RuntimeEntry:
    """One row: "module:Class" of the runtime and of its options, and the pip extra it needs."""

    runtime: str  # a meshserve.adapters.runtime.Runtime
    options: str  # a meshserve.adapters.runtime.RuntimeOptions
    extra: str = ""  # the meshserve extra that installs what it needs ("" when nothing more)

    def runtime_class(self) -> type:
        return _resolve(self.runtime)

    def options_class(self) -> type:
        return _resolve(self.options)


BUILT_IN: dict[str, RuntimeEntry] = {
    "python": RuntimeEntry("meshserve.adapters.python.runtime:PythonRuntime",
                           "meshserve.adapters.python.runtime:PythonOptions"),
    "r": RuntimeEntry("meshserve.adapters.r.runtime:RRuntime", "meshserve.adapters.r.options:ROptions", extra="r"),
    "java": RuntimeEntry("meshserve.adapters.java.runtime:JavaRuntime", "meshserve.adapters.java.options:JavaOptions",
                         extra="java"),
    "triton": RuntimeEntry("meshserve.adapters.triton.runtime:TritonRuntime",
                           "meshserve.adapters.triton.runtime:TritonOptions", extra="triton"),
}


class UnknownRuntime(LookupError):
    """No row names this runtime."""


@functools.cache
def _installed() -> dict[str, EntryPoint]:
    # Read once per process: scanning the installed distributions is the slow part, and the set
    # of installed packages does not change under a running process.
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP) if point.name not in BUILT_IN}


def runtime_names() -> list[str]:
    """Every runtime this process can serve: the built-in ones, then the installed ones."""
    return [*BUILT_IN, *sorted(_installed())]


def runtime_entry(name: str) -> RuntimeEntry:
    """The row of runtime NAME; UnknownRuntime when none, ImportError when its distribution's row
    cannot be loaded."""
    if name in BUILT_IN:
        return BUILT_IN[name]
    point = _installed().get(name)
    if point is None:
        raise UnknownRuntime(name)
    entry = point.load()
    if not isinstance(entry, RuntimeEntry):
        raise ImportError(f"entry point '{name} = {point.value}' (group {ENTRY_POINT_GROUP}) is a "
                          f"{type(entry).__name__}, not a meshserve.core.runtimes.RuntimeEntry")
    return entry


def options_class(name: str) -> type:
    """The options class of runtime NAME, which carries its facts (see adapters/runtime.py)."""
    return runtime_entry(name).options_class()


def _resolve(path: str):
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)
