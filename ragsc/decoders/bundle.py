"""The trained decoders as one shipped file: ``encoders/embedded/decoders.safetensors``.

One safetensors file holds the text GRU (``text.*``), the image generator (``image.*``), the VQA
answer head (``vqa.*``) and the PCA ordering the link sends coefficients in (``pca.*``). Its metadata
(JSON strings) holds what the networks are rebuilt from — one architecture config per part
(``config.text``, ``config.image``, ``config.vqa``; the answer list is in ``config.vqa``) and the
text vocabulary (``vocab``) — plus the fingerprint of the encoder the decoders were trained behind
(``encoder_fingerprint``) and the training figures (``info``). Loading behind another encoder is
refused: the decoders read that encoder's embedding space. ``ragsc decoders train`` rewrites the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ragsc._assets import asset_dir
from ragsc.channel.adaptive import PCAOrdering
from ragsc.decoders.arch import config_from_json, config_to_json
from ragsc.decoders.image import ImageDecoderConfig, ImageDecoderNet
from ragsc.decoders.text import SPECIALS, TextGRU, TextGRUConfig, Vocab
from ragsc.decoders.vqa import AnswerHead, AnswerHeadConfig
from ragsc.errors import ConfigError, ModelLoadError

DECODERS_FILE = "decoders.safetensors"
PARTS = ("text", "image", "vqa")
# part -> (metadata key of its config, config class, network class)
ARCHS = {"text": ("config.text", TextGRUConfig, TextGRU),
         "image": ("config.image", ImageDecoderConfig, ImageDecoderNet),
         "vqa": ("config.vqa", AnswerHeadConfig, AnswerHead)}


def default_path() -> Path:
    """The shipped decoders file of the ``embedded`` encoder."""
    return asset_dir("encoders") / "embedded" / DECODERS_FILE


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

    def check_encoder(self, encoder) -> None:
        """Raise :class:`ConfigError` unless ``encoder`` is the one the decoders were trained behind."""
        from ragsc.encoders.base import serves

        if not serves(encoder, self.encoder_fingerprint):
            raise ConfigError(f"the decoders were trained behind encoder fingerprint "
                              f"{self.encoder_fingerprint}, not {encoder.spec!r} ({encoder.fingerprint}); "
                              f"retrain them with `ragsc decoders train --encoder {encoder.spec}`")


def save_decoders(dec: Decoders, path: str | Path) -> None:
    """Write ``dec`` to one safetensors file at ``path`` (its folder is created; an existing file is replaced
    only once the new one is complete).

    Raises
    ------
    ConfigError
        A part is missing (a bundle loaded with ``skip``) or ``dec.info`` is not JSON-serialisable;
        nothing is written.
    """
    from safetensors.torch import save_file

    missing = [p for p in PARTS if getattr(dec, p) is None]
    if missing:
        raise ConfigError(f"cannot save decoders without the {', '.join(missing)} part(s)")
    try:
        info = json.dumps(dec.info)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the decoders' info must be JSON-serialisable: {exc}") from exc
    state = {}
    for part in PARTS:
        weights = getattr(dec, part).state_dict()
        state.update({f"{part}.{k}": v.detach().contiguous() for k, v in weights.items()})
    state.update({"pca.mean": dec.pca.mean, "pca.components": dec.pca.components.contiguous(),
                  "pca.variances": dec.pca.variances})
    meta = {key: config_to_json(getattr(dec, part).config) for part, (key, _, _) in ARCHS.items()}
    meta.update({"vocab": json.dumps(dec.vocab.words[len(SPECIALS):]),
                 "encoder_fingerprint": dec.encoder_fingerprint, "info": info})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file(state, str(tmp), metadata=meta)
        os.replace(tmp, path)  # a failed write never leaves a half file under the real name
    finally:
        tmp.unlink(missing_ok=True)


def _metadata(path: Path, needed: list[str]) -> dict[str, str]:
    """The file's metadata, with every key in ``needed`` present."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # not safetensors, truncated header: say which file
        raise ModelLoadError(f"cannot load decoders from {path}: {exc}") from exc
    missing = [k for k in needed if k not in meta]
    if missing:
        hint = (" (a file from before the decoders stored their architecture configs; retrain it with "
                "`ragsc decoders train`)" if "sizes" in meta else "")
        raise ModelLoadError(f"cannot load decoders from {path}: metadata key(s) {', '.join(missing)} "
                             f"missing{hint}")
    return meta


def _vocab(text: str) -> Vocab:
    words = json.loads(text)
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ConfigError("the vocabulary must be a JSON list of words")
    return Vocab(words)


def load_decoders(path: str | Path | None = None, skip: tuple[str, ...] = ()) -> Decoders:
    """Read a decoders file: rebuild each network from its stored config, then load its weights.

    Parameters
    ----------
    path
        The safetensors file (default: the shipped one, :func:`default_path`).
    skip
        Parts (``"text"``, ``"image"``, ``"vqa"``) not to read at all: they are ``None`` in the result
        (with ``vocab`` for ``"text"``). The trainer retrains them, possibly in another architecture.

    Returns
    -------
    Decoders
        Networks frozen and in eval mode.

    Raises
    ------
    ModelLoadError
        The file is missing, corrupt, or lacks a metadata key (named), or a config or a weight does
        not fit.
    ConfigError
        ``skip`` names an unknown part.
    """
    from safetensors.torch import load_file

    unknown = [p for p in skip if p not in PARTS]
    if unknown:
        raise ConfigError(f"skip names parts among {', '.join(PARTS)}, got {unknown}")
    path = Path(path) if path is not None else default_path()
    if not path.is_file():
        raise ModelLoadError(f"trained decoders not found at {path}; train them with `ragsc decoders train`")
    parts = [p for p in PARTS if p not in skip]
    needed = [ARCHS[p][0] for p in parts] + (["vocab"] if "text" in parts else []) + ["encoder_fingerprint"]
    meta = _metadata(path, needed)

    def parse(key: str, read, *args):
        try:
            return read(*args, meta[key])
        except Exception as exc:  # bad JSON, a missing or unknown config field, an invalid value
            raise ModelLoadError(f"cannot load decoders from {path}: metadata {key!r}: {exc}") from exc

    nets: dict = dict.fromkeys(PARTS)
    for part in parts:
        key, config_cls, net_cls = ARCHS[part]
        nets[part] = net_cls(parse(key, config_from_json, config_cls))
    vocab = parse("vocab", _vocab) if "text" in parts else None
    info = parse("info", json.loads) if "info" in meta else {}
    try:
        state = load_file(str(path))
        for part in parts:
            prefix = part + "."
            nets[part].load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        pca = PCAOrdering(state["pca.mean"], state["pca.components"], state["pca.variances"])
        dec = Decoders(nets["text"], vocab, nets["image"], nets["vqa"], pca, meta["encoder_fingerprint"],
                       info)
    except Exception as exc:  # wrong shapes, missing tensors, parts that do not fit together: one message
        raise ModelLoadError(f"cannot load decoders from {path}: {exc}") from exc
    for net in nets.values():
        if net is not None:
            net.eval().requires_grad_(False)
    return dec
