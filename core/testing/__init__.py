"""Conformance kit for plugin authors: fixtures and a contract test suite (see README)."""
