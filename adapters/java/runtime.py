"""The Java runtime: serve a jar through JPype inside the adapter process.

This module starts the JVM and serves a package from it: path (a) models (java_interface) and
path (b) models (java_legacy) run on a thread pool, and Java exceptions become statuses. Beside it:
java_options (the `java:` section of model.yaml), java_environment (environment capture, jar
digests, Java version check) and java_arrays (tensors <-> Java arrays).

Why it is shaped this way (see docs/java-guide.md):
- One JVM per adapter process, started at load with the manifest's options and convertStrings=False.
  A JVM cannot restart inside a process and a process must not fork once it runs, so recovery from
  OutOfMemoryError is a process restart: the runtime answers UNAVAILABLE and stops its process,
  which the mesh starts again.
- The package's jars load through their own URLClassLoader; the JVM's class path holds only
  meshserve's API jar. Several packages can then share a process (tests, tools) without seeing
  each other's classes, and the classpath is data in the manifest rather than a JVM flag.
- Java calls release the GIL, so predict runs on a thread pool and concurrent requests run in
  parallel. Inputs cross as one flat contiguous primitive array (a memcpy), never as nested lists.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from meshserve.core.errors import InvalidInput, ModelFailed, ModelUnavailable
from meshserve.core.model_package import ModelPackage
from meshserve.core.settings import get_settings
from meshserve.adapters.runtime import Runtime, Tensors
from meshserve.adapters.java.environment import check_java_version, verify_jars
from meshserve.adapters.java.interface import InterfaceModel
from meshserve.adapters.java.legacy import LegacyModel
from meshserve.adapters.java.options import JavaOptions

__all__ = ["JavaOptions", "JavaRuntime"]

log = logging.getLogger("meshserve.adapters.java")

API_JAR_NAME = "meshserve-model-api.jar"
# Built by scripts/setup.d/40-java.sh from adapters/java/src; the java_api_jar setting overrides.
DEFAULT_API_JAR = Path(__file__).resolve().parent / "build" / API_JAR_NAME

# --------------------------------------------------------------------------------------------
# The JVM: once per process
# --------------------------------------------------------------------------------------------

_jvm_lock = threading.Lock()
_jvm_pid: int | None = None
_jvm_options: tuple[str, ...] = ()


def _forbid_use_after_fork() -> None:
    if _jvm_pid is not None:
        log.error("process forked after its JVM started; the child cannot use Java (start a new process instead)")


os.register_at_fork(after_in_child=_forbid_use_after_fork)


def api_jar() -> Path:
    path = Path(get_settings().java_api_jar or DEFAULT_API_JAR)
    if not path.is_file():
        raise ModelUnavailable(f"meshserve's Java API jar {path} is missing; run scripts/setup.sh to build it")
    return path


def start_jvm(options: JavaOptions) -> None:
    """Start this process's JVM, or reuse it if it runs (its options cannot change any more)."""
    global _jvm_pid, _jvm_options
    import jpype

    wanted = tuple(jvm_arguments(options))
    with _jvm_lock:
        if jpype.isJVMStarted():
            if _jvm_pid is not None and _jvm_pid != os.getpid():
                raise ModelUnavailable("this process was forked after its JVM started; Java cannot run here")
            if wanted != _jvm_options:
                log.warning("JVM already running with %s; ignoring %s", _jvm_options, wanted)
            return
        # -Xrs: leave SIGTERM/SIGINT to the adapter server, whose graceful stop must run.
        jpype.startJVM(*wanted, classpath=[str(api_jar())], convertStrings=False, interrupt=False)
        _jvm_pid, _jvm_options = os.getpid(), wanted
        log.info("JVM %s started with %s", jpype.getJVMVersion(), " ".join(wanted))


def jvm_arguments(options: JavaOptions) -> list[str]:
    args = ["-Xrs"]
    if options.heap:
        args.append(f"-Xmx{options.heap}")
    return args + list(options.jvm_options)


# --------------------------------------------------------------------------------------------
# The runtime
# --------------------------------------------------------------------------------------------

class JavaRuntime(Runtime):
    """Serve a Java model package (path (a) or (b)) from this process's JVM."""

    def __init__(self) -> None:
        self._model: InterfaceModel | LegacyModel | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._broken: str | None = None
        self._invalid_argument: list[Any] = []

    async def load(self, package: ModelPackage) -> None:
        # Synchronous on purpose: the JVM is started once, before the server takes requests.
        self.package = package
        options: JavaOptions = package.options  # type: ignore[assignment]
        self._options = options
        verify_jars(package)
        start_jvm(options)
        import jpype

        check_java_version(package)
        loader = self._class_loader(package, options)
        thread = jpype.JClass("java.lang.Thread")
        thread.currentThread().setContextClassLoader(loader)
        self._invalid_argument = [jpype.JClass(name, loader=loader).class_
                                  for name in options.invalid_argument_exceptions]
        try:
            if options.model_class is not None:
                self._model = InterfaceModel(package, options, loader)
            else:
                self._model = LegacyModel(package, options, loader)
        except jpype.JException as exc:
            log.error("Java model failed to load:\n%s", exc.stacktrace())
            raise ModelUnavailable(f"Java model did not load: {exc.getClass().getName()}: {exc.getMessage()}") from exc

        def attach() -> None:
            # Worker threads see the package's classes through the context class loader too.
            thread.currentThread().setContextClassLoader(loader)

        self._pool = ThreadPoolExecutor(options.threads, thread_name_prefix="java-predict", initializer=attach)

    @staticmethod
    def _class_loader(package: ModelPackage, options: JavaOptions):
        import jpype

        url = jpype.JClass("java.net.URL")
        urls = jpype.JArray(url)([jpype.JClass("java.io.File")(str(jar.file(package))).toURI().toURL()
                                  for jar in options.classpath])
        parent = jpype.JClass("java.lang.ClassLoader").getSystemClassLoader()
        return jpype.JClass("java.net.URLClassLoader")(urls, parent)

    async def predict(self, inputs: Tensors) -> Tensors:
        if self._broken or self._model is None or self._pool is None:
            raise ModelUnavailable(self._broken or "Java model is not loaded")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._predict_in_thread, inputs)

    def _predict_in_thread(self, inputs: Tensors) -> Tensors:
        import jpype

        try:
            return self._model.predict(inputs)  # type: ignore[union-attr]
        except jpype.JException as exc:
            raise self._status_for(exc) from exc

    def _status_for(self, exc) -> Exception:
        """The Java exception as the error the adapter server turns into a gRPC status."""
        name = exc.getClass().getName()
        message = exc.getMessage()
        described = f"{name}: {message}" if message is not None else name
        if name == "java.lang.OutOfMemoryError":
            log.error("Java model ran out of memory:\n%s", exc.stacktrace())
            if self._options.on_out_of_memory == "restart":
                self._broken = f"{described}; the adapter restarts, retry shortly"
                self._restart_process()
                return ModelUnavailable(f"model raised {self._broken}")
            return ModelFailed(f"model raised {described} (java)")
        if any(cls.isInstance(exc) for cls in self._invalid_argument):
            return InvalidInput(None, f"model rejected the input: {described}")
        log.warning("Java model raised:\n%s", exc.stacktrace())
        return ModelFailed(f"model raised {described} (java)")

    def _restart_process(self) -> None:
        """Stop this process gracefully so the mesh starts a fresh one with a fresh JVM: the JVM
        cannot restart in-process. The short delay lets the UNAVAILABLE answer go out first."""
        log.error("stopping the adapter process after OutOfMemoryError; the mesh restarts it")
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()

    async def ready(self) -> bool:
        return self._model is not None and self._broken is None

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._model is not None:
            try:
                self._model.close()
            except Exception as exc:  # closing must not hide the reason we stop
                log.warning("Java model close failed: %s", exc)
        self._model = None
