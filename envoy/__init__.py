"""The Envoy package: configuration rendered from the deployment spec (bootstrap and listeners,
routes, clusters), Envoy's admin client, the Envoy process, and live rollouts."""
