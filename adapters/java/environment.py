"""The Java environment of a package: what `meshserve package` records (Java version, jar
digests) and the checks at load that the jars and the running Java still match it."""

from __future__ import annotations

import logging
import os
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage, sha256_of

if TYPE_CHECKING:  # the options import this module to capture the environment
    from meshserve.adapters.java.options import JavaOptions

log = logging.getLogger("meshserve.adapters.java")


def java_home() -> Path:
    """The Java installation JPype starts (JAVA_HOME, else the default JVM library's home)."""
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    import jpype  # importing jpype does not start a JVM

    libjvm = Path(jpype.getDefaultJVMPath()).resolve()
    return libjvm.parent.parent.parent  # <home>/lib/server/libjvm.so


def java_properties() -> dict[str, str]:
    """java.version, java.vendor and java.vm.name of that Java, from a separate `java` process:
    starting a JVM here would forbid the calling process to fork afterwards."""
    result = subprocess.run([str(java_home() / "bin" / "java"), "-XshowSettings:properties", "-version"],
                            capture_output=True, text=True, timeout=60)
    props = {}
    for line in result.stderr.splitlines():
        match = re.match(r"\s+(java\.version|java\.vendor|java\.vm\.name|java\.runtime\.version) = (.*)", line)
        if match:
            props[match.group(1)] = match.group(2).strip()
    return props


def capture_environment(package: ModelPackage) -> dict[str, Any]:
    """What `meshserve package` records under `environment.java`: Java version and jar digests."""
    options: JavaOptions = package.options  # type: ignore[assignment]
    props = java_properties()
    return {"java": {
        "version": props.get("java.runtime.version", props.get("java.version", "unknown")),
        "vendor": props.get("java.vendor", "unknown"),
        "vm": props.get("java.vm.name", "unknown"),
        "jars": {jar.path: sha256_of(jar.file(package)) for jar in options.classpath},
    }}


def recorded_digests(package: ModelPackage) -> dict[str, str]:
    """Jar digests the manifest expects: `classpath[].sha256`, then `environment.java.jars`."""
    options: JavaOptions = package.options  # type: ignore[assignment]
    env = package.manifest.environment or {}
    captured = (env.get("java") or {}).get("jars") or {}
    expected = {}
    for jar in options.classpath:
        if jar.sha256:
            expected[jar.path] = jar.sha256
        elif jar.path in captured:
            expected[jar.path] = str(captured[jar.path])
    return expected


def verify_jars(package: ModelPackage) -> None:
    """Refuse to load when a jar differs from the one the manifest recorded."""
    options: JavaOptions = package.options  # type: ignore[assignment]
    expected = recorded_digests(package)
    for i, jar in enumerate(options.classpath):
        if jar.path not in expected:
            continue
        actual = sha256_of(jar.file(package))
        if actual != expected[jar.path]:
            raise ManifestError(
                str(package.manifest_path), f"java.classpath[{i}].sha256",
                f"jar {jar.file(package)} changed since the model was packaged: "
                f"model.yaml records sha256 {expected[jar.path]}, the file has sha256 {actual}",
                "restore the jar the model was packaged with, or re-run `meshserve package` if the change is intended",
            )


def check_java_version(package: ModelPackage) -> None:
    """Compare the running Java with the one `meshserve package` recorded: a warning, or a refusal
    when the environment is strict. Call after the JVM started."""
    import jpype

    env = package.manifest.environment or {}
    recorded = (env.get("java") or {}).get("version")
    running = str(jpype.JClass("java.lang.System").getProperty("java.runtime.version"))
    if not recorded or str(recorded) == running:
        return
    if env.get("strict"):
        raise ManifestError(str(package.manifest_path), "environment.java.version",
                            f"the model was packaged with Java {recorded} but this JVM is {running}",
                            "run the adapter with that Java (JAVA_HOME), or re-run `meshserve package` after testing")
    log.warning("model packaged with Java %s, running on %s", recorded, running)
