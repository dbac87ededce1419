"""Deploying the stages: the Kubernetes manifests, rendered from the catalog and the settings."""
