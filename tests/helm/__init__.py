"""Helpers and fixtures of the Helm chart tests (the helm binary, an example application chart)."""
