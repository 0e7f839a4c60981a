"""The trained decoders as one saved model: ``encoders/embedded/decoders/`` (:mod:`ragsc.saved`, kind
``decoders``).

``model.safetensors`` holds the text GRU (``text.*``), the image generator (``image.*``), the VQA answer head
(``vqa.*``) and the PCA ordering the link sends coefficients in (``pca.*``). ``config.json``'s ``config``
holds what the networks are rebuilt from — one architecture config per part (``text``, ``image``, ``vqa``;
the answer list is in ``vqa``) and the text vocabulary (``vocab``) — plus the fingerprint of the encoder the
decoders were trained behind (``encoder_fingerprint``); its ``info`` the training figures. Loading behind
another encoder is refused: the decoders read that encoder's embedding space. ``ragsc decoders train`` writes
a new folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ragsc._assets import asset_dir
from ragsc.channel.adaptive import PCAOrdering
from ragsc.decoders.arch import config_from_json, config_to_json
from ragsc.decoders.image import ImageDecoderConfig, ImageDecoderNet
from ragsc.decoders.text import SPECIALS, TextGRU, TextGRUConfig, Vocab
from ragsc.decoders.vqa import AnswerHead, AnswerHeadConfig
from ragsc.errors import ConfigError, InputError, ModelLoadError
from ragsc.saved import Saved, build, read, require, save

DECODERS_DIR = "decoders"
PARTS = ("text", "image", "vqa")
# part -> (metadata key of its config, config class, network class)
ARCHS = {"text": ("config.text", TextGRUConfig, TextGRU),
         "image": ("config.image", ImageDecoderConfig, ImageDecoderNet),
         "vqa": ("config.vqa", AnswerHeadConfig, AnswerHead)}


def default_path() -> Path:
    """The shipped decoders folder of the ``embedded`` encoder."""
    return asset_dir("encoders") / "embedded" / DECODERS_DIR


@dataclass
class Decoders:
    """The trained decoder networks and what they were trained behind.

    A part is ``None`` only in what :func:`load_decoders` returns for the parts it was told to skip
    (the trainer replaces them); such a bundle cannot be saved.

    Raises
    ------
    ConfigError
        The parts do not fit together: a text GRU without its vocabulary or with another vocabulary
        size, or a network that reads embeddings of another size than the PCA basis.
    """

    text: TextGRU | None
    vocab: Vocab | None
    image: ImageDecoderNet | None
    vqa: AnswerHead | None
    pca: PCAOrdering
    encoder_fingerprint: str
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.text is None) != (self.vocab is None):
            raise ConfigError("the text GRU and its vocabulary come together: one of them is missing")
        if self.text is not None and self.text.config.vocab_size != len(self.vocab):
            raise ConfigError(f"the text GRU has {self.text.config.vocab_size} word ids, its vocabulary "
                              f"{len(self.vocab)} words")
        dim = self.pca.mean.shape[0]
        for part in PARTS:
            net = getattr(self, part)
            if net is not None and net.config.dim != dim:
                raise ConfigError(f"the {part} decoder reads {net.config.dim}-d embeddings, the PCA basis is "
                                  f"{dim}-d: they were not trained behind the same encoder")

    # --------------------------------------------------------------------------- saved folder
    kind: ClassVar[str] = "decoders"
    format_version: ClassVar[int] = 1

    def to_saved(self) -> Saved:
        """The bundle as :mod:`ragsc.saved` writes it: each part's config, the vocabulary and the encoder's
        fingerprint in ``config``; every network's weights and the PCA basis in the tensors."""
        missing = [p for p in PARTS if getattr(self, p) is None]
        if missing:
            raise ConfigError(f"cannot save decoders without the {', '.join(missing)} part(s)")
        try:
            info = json.loads(json.dumps(self.info))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"the decoders' info must be JSON-serialisable: {exc}") from exc
        tensors = {f"{part}.{k}": v for part in PARTS for k, v in getattr(self, part).state_dict().items()}
        tensors.update({"pca.mean": self.pca.mean, "pca.components": self.pca.components,
                        "pca.variances": self.pca.variances})
        config = {part: json.loads(config_to_json(getattr(self, part).config)) for part in PARTS}
        config.update({"vocab": self.vocab.words[len(SPECIALS):],
                       "encoder_fingerprint": self.encoder_fingerprint})
        return Saved(self.kind, self.format_version, config, tensors, info)

    @classmethod
    def from_saved(cls, saved: Saved, skip: tuple[str, ...] = ()) -> Decoders:
        """Rebuild the bundle (parts in ``skip`` left ``None``), networks frozen and in eval mode."""
        where, config = str(saved.folder), saved.config

        def parse(key: str, build):
            if key not in config:
                raise ModelLoadError(f"{where}: the decoders' config has no {key!r}")
            try:
                return build(config[key])
            except (ConfigError, TypeError, ValueError) as exc:  # a missing / unknown field, a bad value
                raise ModelLoadError(f"{where}: the decoders' {key!r} config: {exc}") from None

        nets: dict = dict.fromkeys(PARTS)
        for part in (p for p in PARTS if p not in skip):
            _, config_cls, net_cls = ARCHS[part]
            cfg = parse(part, lambda c, k=config_cls: config_from_json(k, json.dumps(c)))
            net = build(lambda n=net_cls, c=cfg: n(c), saved.tensors, where, f"{part}.")
            nets[part] = net.eval().requires_grad_(False)
        vocab = parse("vocab", _vocab) if nets["text"] is not None else None
        fingerprint = parse("encoder_fingerprint", _string)
        try:
            pca = PCAOrdering(saved.tensors["pca.mean"], saved.tensors["pca.components"],
                              saved.tensors["pca.variances"])
            return cls(nets["text"], vocab, nets["image"], nets["vqa"], pca, fingerprint, dict(saved.info))
        except (KeyError, ConfigError, InputError) as exc:  # a missing basis, parts that do not fit together
            raise ModelLoadError(f"cannot load decoders from {where}: {exc}") from None

    def check_encoder(self, encoder) -> None:
        """Raise :class:`ConfigError` unless ``encoder`` is the one the decoders were trained behind."""
        from ragsc.encoders.base import serves

        if not serves(encoder, self.encoder_fingerprint):
            raise ConfigError(f"the decoders were trained behind encoder fingerprint "
                              f"{self.encoder_fingerprint}, not {encoder.spec!r} ({encoder.fingerprint}); "
                              f"retrain them with `ragsc decoders train --encoder {encoder.spec}`")


def save_decoders(dec: Decoders, folder: str | Path, *, overwrite: bool = False) -> Path:
    """Save ``dec`` into ``folder`` (:func:`ragsc.saved.save`); returns the folder.

    Raises
    ------
    ConfigError
        A part is missing (a bundle loaded with ``skip``) or ``dec.info`` is not JSON-serialisable;
        nothing is written.
    InputError
        ``folder`` may not be written (a file, a folder of other files, a saved model without
        ``overwrite``).
    """
    return save(dec, folder, overwrite=overwrite)


def load_decoders(path: str | Path | None = None, skip: tuple[str, ...] = ()) -> Decoders:
    """Read a decoders folder: rebuild each network from its stored config, then load its weights.

    Parameters
    ----------
    path
        The saved folder (default: the shipped one, :func:`default_path`).
    skip
        Parts (``"text"``, ``"image"``, ``"vqa"``) not to build at all: they are ``None`` in the result
        (with ``vocab`` for ``"text"``). The trainer retrains them, possibly in another architecture.

    Returns
    -------
    Decoders
        Networks frozen and in eval mode.

    Raises
    ------
    ModelLoadError
        The folder is missing, not a decoders folder, corrupt, or a config or a tensor does not fit (named).
    ConfigError
        ``skip`` names an unknown part.
    """
    unknown = [p for p in skip if p not in PARTS]
    if unknown:
        raise ConfigError(f"skip names parts among {', '.join(PARTS)}, got {unknown}")
    path = Path(path) if path is not None else default_path()
    require(path, Decoders.kind, "decoders folder", "train them with `ragsc decoders train`")
    return Decoders.from_saved(read(path), skip=skip)


def _vocab(words) -> Vocab:
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ConfigError("the vocabulary must be a JSON list of words")
    return Vocab(words)


def _string(value) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"expected a non-empty string, got {value!r}")
    return value
