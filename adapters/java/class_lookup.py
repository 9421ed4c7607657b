"""A class model.yaml names that the package's jars do not hold, said as the fix.

The JVM only says ClassNotFoundException. Reading the jars' entries (a zip listing, no JVM
needed) tells a misspelt class (a close match is there) from a jar swapped for another (no
class of that Java package is there at all), so the line names the field to change: the one
naming the class, or `java.classpath`.
"""

from __future__ import annotations

import difflib
import zipfile

from meshserve.core.errors import ManifestError
from meshserve.core.model_package import ModelPackage
from meshserve.adapters.java.options import JavaOptions

_JDK_PACKAGES = ("java.", "javax.", "jdk.", "sun.", "io.meshserve.")  # found through the parent loader, not a jar


def jar_classes(package: ModelPackage, options: JavaOptions) -> list[str]:
    """Every class the classpath's jars hold, by binary name (nested classes with `$`)."""
    names: list[str] = []
    for jar in options.classpath:
        try:
            with zipfile.ZipFile(jar.file(package)) as archive:
                names += [n[:-len(".class")].replace("/", ".") for n in archive.namelist()
                          if n.endswith(".class") and not n.startswith("META-INF/")]
        except (OSError, zipfile.BadZipFile):
            continue  # a jar that cannot be read is reported by its own check
    return names


def missing_class(package: ModelPackage, options: JavaOptions, name: str, field: str) -> ManifestError:
    """NAME (written in FIELD) is on no jar of the classpath: a typo, or the wrong jar."""
    classes = jar_classes(package, options)
    written = [c.replace("$", ".") for c in classes]
    close = difflib.get_close_matches(name.replace("$", "."), written, n=3, cutoff=0.75)
    jars = ", ".join(str(jar.file(package)) for jar in options.classpath) or "no jar"
    java_package = name.rpartition(".")[0]
    if not close and java_package and not name.startswith(_JDK_PACKAGES) and \
            not any(c.startswith(java_package + ".") for c in classes):
        return ManifestError(str(package.manifest_path), "java.classpath",
                             f"no jar under java.classpath holds {name} (named in {field}), nor any class of "
                             f"package {java_package}; the classpath is {jars}",
                             f"list the jar that holds {name} (the one the model was built with) under "
                             "java.classpath; `jar tf FILE.jar` lists what a jar holds")
    fix = (f"write the class's name as the jar has it: {', '.join(close)}" if close else
           "check the name (a nested class may be written A.B or A$B) and the jars under java.classpath; "
           "`jar tf FILE.jar` lists what a jar holds")
    return ManifestError(str(package.manifest_path), field, f"no class '{name}' on the model's classpath ({jars})",
                         fix)
