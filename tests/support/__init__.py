"""Shared test support: real database servers and config helpers."""
