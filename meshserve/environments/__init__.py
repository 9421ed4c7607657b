"""Python environments of model packages: what a package needs (captured by `meshserve package`
from a requirements file or the training virtual environment), and the virtual environment
built for it once, cached by digest, that `meshserve up` runs its adapter in."""
