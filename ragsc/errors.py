"""The one error hierarchy of ragsc.

Every error a user can cause with bad input, a bad spec or a missing optional dependency is a
:class:`RagscError`; its message says what was wrong and what to do. Library-internal bugs are
allowed to surface as ordinary Python exceptions, user mistakes are not.
"""

from __future__ import annotations


class RagscError(Exception):
    """Base class of every error ragsc raises on purpose."""


class ConfigError(RagscError, ValueError):
    """A spec string, config value or YAML pipeline spec is invalid."""


class InputError(RagscError, ValueError):
    """Data handed to a component (an image, a text, a tensor) cannot be used."""


class ModelLoadError(RagscError, RuntimeError):
    """A model or checkpoint could not be loaded from the place the spec names."""


class MissingDependencyError(RagscError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


class KBError(RagscError, RuntimeError):
    """A knowledge base is missing, corrupt, locked or built by another encoder."""
