"""A model world from outside meshserve, for the tests: it multiplies each input by a factor.

Everything meshserve needs to know of it is here: the table row below (which an installed
distribution names in its `meshserve.runtimes` entry point, `toy = toy_runtime:ROW`), its
options class with its facts (options.py), and its Runtime (runtime.py).
"""

from meshserve.core.runtimes import RuntimeEntry

ROW = RuntimeEntry(runtime="toy_runtime.runtime:ToyRuntime", options="toy_runtime.options:ToyOptions")
