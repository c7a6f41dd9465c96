"""End-to-end tier: tests against a real Kubernetes API server (see README.md)."""
