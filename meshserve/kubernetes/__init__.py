"""Kubernetes manifests rendered from the deployment spec (`meshserve k8s render`).

The cluster counterpart of `meshserve.launcher` (one machine): the same `meshserve.yaml` and
model packages become a router Deployment with its autoscaler, Envoy with its rendered
configuration in a ConfigMap, one Deployment per model variant, the recorder beside every
pod that records, and the Services, disruption budgets and network policies around them.
Everything here is a pure function from the typed spec to plain dicts; only `render.write`
touches the disk. See docs/kubernetes.md.
"""
