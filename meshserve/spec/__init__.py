"""What every part of the mesh agrees on: the deployment spec (`meshserve.yaml` and its `security:`
section), the models table the launcher writes and the router reads, the models folder, and the
deployment log. Parts import these from here, never from one another."""
