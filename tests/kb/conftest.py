"""Fixtures of the knowledge-base tests: ``fake_encoder`` and ``new_kb`` live in tests/conftest.py (the CLI
tests use them too)."""
