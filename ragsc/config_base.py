"""The base of every ragsc config: :class:`Config` (unknown fields refused, frozen, errors that name each
bad field), the error type that carries those fields, and the bounds a saved model's config may ask for.
:mod:`ragsc.config` re-exports all of it; the pipeline spec and the shared configs live there.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from ragsc.errors import ConfigError

# Bounds of the sizes a saved model's config may ask for: generous (far above any model ragsc trains), but
# finite, so that a damaged or hostile config.json is refused by name before anything is allocated rather
# than building whatever it asks for (an embedding of 2^20 dimensions, a negative width).
MAX_DIM = 65_536  # an embedding's dimension (a teacher's, a student's output, a codec's target)
MAX_WIDTH = 8_192  # a network's width: channels, hidden units, a transformer's model dimension
MAX_CLASSES = 1_000_000  # task classes, vocabulary entries, answers


class FieldErrors(ConfigError):
    """A config's bad fields: ``problems`` holds ``(dotted field, what is wrong)`` pairs, so a config nested
    in another reports ``encoder.batch_size`` rather than a message inside a message."""

    def __init__(self, model: str, problems: list[tuple[str, str]]) -> None:
        self.model, self.problems = model, problems
        super().__init__(f"invalid {model}: {join(problems)}")


def join(problems: list[tuple[str, str]]) -> str:
    """``"field: what; field: what"``."""
    return "; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in problems)


def problems(exc: ValidationError) -> list[tuple[str, str]]:
    """Each bad field of a validation error and what is wrong with it, as ``(dotted field, message)``; a
    nested config's own :class:`FieldErrors` are lifted under the field that holds it."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, FieldErrors):
            out += [(".".join(x for x in (loc, sub) if x), msg) for sub, msg in inner.problems]
            continue
        msg = str(inner) if isinstance(inner, ConfigError) else err["msg"].removeprefix("Value error, ")
        got = err.get("input")
        if not isinstance(inner, ConfigError) and loc and not isinstance(got, dict | BaseModel):
            msg += f" (got {got!r})"
        out.append((loc, msg))
    return out


class Config(BaseModel):
    """The base of every ragsc config: unknown fields are refused, a built config is frozen, and a bad
    value raises :class:`~ragsc.errors.ConfigError` naming each bad field (from the constructor as from
    :func:`validate`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, /, **data) -> None:  # positional-only: a field named "self" is an unknown field
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise FieldErrors(type(self).__name__, problems(exc)) from None
