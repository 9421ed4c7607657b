"""meshserve: serve R, Java, Python and Triton models behind one Open Inference Protocol contract."""

__version__ = "0.1.0"
