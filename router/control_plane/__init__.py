"""The router's control plane: what is served and how traffic is split (meshserve.v1.Control)."""
