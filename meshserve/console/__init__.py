"""The operator's console: the mesh's models, their traffic, drift, agreement and quality, and the
controls that move traffic, served as web pages by the router on the mesh's client address
under /console/ (docs/observability.md, "Console")."""
