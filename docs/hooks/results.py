"""Placeholder MkDocs hook: does nothing.

The ``results`` branch replaces this file with the hook that renders the benchmarks' JSON into the
``docs/results/`` pages; ``mkdocs.yml`` registers it (``hooks: [docs/hooks/results.py]``) so that the
build passes before and after that merge.
"""
