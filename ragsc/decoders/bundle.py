"""The trained decoders as one shipped file: ``encoders/embedded/decoders.safetensors``.

One safetensors file holds the text GRU (``text.*``), the image generator (``image.*``), the VQA
answer head (``vqa.*``) and the PCA ordering the link sends coefficients in (``pca.*``); its metadata
holds the vocabulary, the answer list, the layer sizes, the fingerprint of the encoder the decoders
were trained behind, and the training figures. Loading behind another encoder is refused: the
decoders read that encoder's embedding space. ``ragsc decoders train`` rewrites the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


from ragsc._assets import asset_dir
from ragsc.channel.adaptive import PCAOrdering
from ragsc.decoders.image import ImageDecoderNet
from ragsc.decoders.text import TextGRU, Vocab
from ragsc.decoders.vqa import AnswerHead
from ragsc.errors import KBError, ModelLoadError

DECODERS_FILE = "decoders.safetensors"


def default_path() -> Path:
    return asset_dir("encoders") / "embedded" / DECODERS_FILE


@dataclass
class Decoders:
    """The trained decoder networks and what they were trained behind."""

    text: TextGRU
    vocab: Vocab
    image: ImageDecoderNet
    vqa: AnswerHead
    pca: PCAOrdering
    encoder_fingerprint: str
    info: dict = field(default_factory=dict)

    def check_encoder(self, encoder) -> None:
        if encoder.fingerprint != self.encoder_fingerprint:
            raise KBError(f"the decoders were trained behind encoder fingerprint {self.encoder_fingerprint}, not "
                          f"{encoder.spec!r} ({encoder.fingerprint}); retrain them with `ragsc decoders train --encoder "
                          f"{encoder.spec}`")


def save_decoders(dec: Decoders, path: str | Path) -> None:
    from safetensors.torch import save_file

    state = {}
    for prefix, module in (("text", dec.text), ("image", dec.image), ("vqa", dec.vqa)):
        state.update({f"{prefix}.{k}": v.detach().contiguous() for k, v in module.state_dict().items()})
    state.update({"pca.mean": dec.pca.mean, "pca.components": dec.pca.components.contiguous(),
                  "pca.variances": dec.pca.variances})
    meta = {
        "vocab": json.dumps(dec.vocab.words[4:]),
        "answers": json.dumps(dec.vqa.answers),
        "sizes": json.dumps({"dim": dec.text.init[0].in_features, "text_hidden": dec.text.gru.hidden_size,
                             "text_emb": dec.text.embed.embedding_dim, "max_len": dec.text.max_len,
                             "image_width": dec.image.width, "vqa_hidden": dec.vqa.mlp[0].out_features}),
        "encoder_fingerprint": dec.encoder_fingerprint,
        "info": json.dumps(dec.info),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)


def load_decoders(path: str | Path | None = None, skip: tuple[str, ...] = ()) -> Decoders:
    """Read a decoders file (default: the shipped one); parts named in ``skip`` (``"text"``, ``"image"``,
    ``"vqa"``) are left freshly initialised (retraining a part whose architecture changed)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path) if path is not None else default_path()
    if not path.is_file():
        raise ModelLoadError(f"trained decoders not found at {path}; train them with `ragsc decoders train`")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        sizes = json.loads(meta["sizes"])
        vocab = Vocab(json.loads(meta["vocab"]))
        text = TextGRU(len(vocab), sizes["dim"], sizes["text_emb"], sizes["text_hidden"], sizes["max_len"])
        image = ImageDecoderNet(sizes["dim"], 64, sizes["image_width"])
        vqa = AnswerHead(json.loads(meta["answers"]), sizes["dim"], sizes["vqa_hidden"])
        state = load_file(str(path))
        for prefix, module in (("text", text), ("image", image), ("vqa", vqa)):
            if prefix in skip:
                continue
            module.load_state_dict({k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")})
        pca = PCAOrdering(state["pca.mean"], state["pca.components"], state["pca.variances"])
        fingerprint, info = meta["encoder_fingerprint"], json.loads(meta.get("info", "{}"))
    except Exception as exc:  # corrupt file, missing keys, wrong shapes: one clear message
        raise ModelLoadError(f"cannot load decoders from {path}: {exc}") from exc
    for m in (text, image, vqa):
        m.eval().requires_grad_(False)
    return Decoders(text, vocab, image, vqa, pca, fingerprint, info)
