"""The local Kubernetes control plane of the e2e tier: build (binaries), run (localcluster)."""
