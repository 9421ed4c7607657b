"""The table of model worlds: the one place a runtime is named.

Each entry says where its `Runtime` class and its options class (the model.yaml section
named after the runtime) live, as import paths resolved only when asked for, so checking a
manifest never starts R, a JVM or Triton. Adding a world is one line here plus its sub-package.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meshserve.adapters.runtime import Runtime, RuntimeOptions


@dataclass(frozen=True)
class RuntimeEntry:
    runtime: str  # "module:Class" of the Runtime
    options: str  # "module:Class" of its model.yaml section
    extra: str  # the pip extra that installs what it needs ("" when nothing more)

    def runtime_class(self) -> type["Runtime"]:
        return _resolve(self.runtime)

    def options_class(self) -> type["RuntimeOptions"]:
        return _resolve(self.options)


RUNTIMES: dict[str, RuntimeEntry] = {
    "python": RuntimeEntry("meshserve.adapters.python.runtime:PythonRuntime",
                           "meshserve.adapters.python.runtime:PythonOptions", extra=""),
    "r": RuntimeEntry("meshserve.adapters.r.runtime:RRuntime", "meshserve.adapters.r.runtime:ROptions", extra="r"),
    "java": RuntimeEntry("meshserve.adapters.java.runtime:JavaRuntime", "meshserve.adapters.java.options:JavaOptions",
                         extra="java"),
    "triton": RuntimeEntry("meshserve.adapters.triton.runtime:TritonRuntime",
                           "meshserve.adapters.triton.runtime:TritonOptions", extra="triton"),
}


def runtime_entry(name: str) -> RuntimeEntry:
    return RUNTIMES[name]


def _resolve(path: str):
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)
