"""Pydantic v2 configs shared across packages, and the YAML pipeline spec they validate.

Every model forbids unknown fields; a bad value raises :class:`~ragsc.errors.ConfigError` whose
message names the field (``encoder.batch_size``) and what is allowed. A pipeline spec
(``pipelines/<task>.yaml``) names the encoder, the channel, the receiver's knowledge bases and its
decoders; :class:`ragsc.Pipeline` builds from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from ragsc.config_base import (  # noqa: F401 (re-exported: the configs' base lives in one place)
    MAX_CLASSES,
    MAX_DIM,
    MAX_WIDTH,
    Config,
    FieldErrors,
    join,
    problems,
)
from ragsc.errors import ConfigError
from ragsc.registry import ENCODERS
from ragsc.types import SNR_RANGE_DB, check_snr_db, parse_ratio  # noqa: F401 (re-exported)

Fusion = Literal["rrf", "weighted"]
# How a receiver fuses its local and global KBs' hits, for specs and HybridRetriever alike: weighted
# (max cosine) rather than RRF, because the local KB is a subset of the global one and RRF would sum an
# item's two ranks, so any local item would outrank a better global match.
FUSION_DEFAULT: Fusion = "weighted"

class EncoderConfig(Config):
    """Which encoder and how to run it."""

    spec: str = Field("embedded", description="'embedded', 'open_clip:<model>/<tag|ckpt>', "
                      "'open_clip:local-dir:<dir>' or 'hf:<dir|id>'")
    device: str = "cpu"
    batch_size: int = Field(64, ge=1, le=4096)

    @field_validator("spec")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        if v.strip().partition(":")[0] not in ENCODERS:
            raise ValueError(f"unknown encoder backend in {v!r}; allowed prefixes: {', '.join(ENCODERS)}")
        return v.strip()


class ChannelConfig(Config):
    """The wireless channel every transmission path crosses (see :mod:`ragsc.channel` for the units).

    One config for every path: the analog :class:`~ragsc.channel.AnalogLink`, the CAT link, the digital
    paths and the ideal bound all hold one (``path.config``), and a pipeline spec's ``channel:`` section
    validates into it (into its subclass :class:`PipelineChannelConfig`, which adds the pipeline's choice
    of path). ``snr_db`` is the default of a call that names none (:meth:`resolve_snr`).
    """

    channel: Literal["awgn", "rayleigh", "rician"] = "awgn"
    snr_db: float = Field(10.0, ge=SNR_RANGE_DB[0], le=SNR_RANGE_DB[1], allow_inf_nan=False)
    k_symbols: int | None = Field(48, gt=0, le=1_000_000, description="complex symbols per item, in every "
                                  "path compared; null: as many as the source has (analog link only)")
    csi: Literal["perfect", "none"] = "perfect"
    equalizer: Literal["mmse", "zf"] = Field("mmse", description="analog paths: the estimate they output; "
                                             "detectors (digital, token link) de-bias it, which with one "
                                             "antenna makes both the same (equalize_for_detection)")
    fading: Literal["block", "fast"] = "block"
    rician_k: float = Field(4.0, ge=0.0, allow_inf_nan=False)
    seed: int | None = Field(0, ge=0, le=2**63 - 1, description="seed of the channel's generator; null: "
                             "nondeterministic")

    def resolve_snr(self, snr_db: float | None = None) -> float:
        """The SNR of one transmission: ``snr_db``, or this config's default when it is ``None``.

        The one place a path's SNR is decided; an SNR that is not finite or lies outside
        [-30, 60] dB raises :class:`~ragsc.errors.InputError`.
        """
        snr = self.snr_db if snr_db is None else snr_db
        return check_snr_db(snr)


CAT_FIELDS = ("cat", "cat_quality", "cat_symbols", "cat_pilots")  # PipelineChannelConfig's CAT settings


class PipelineChannelConfig(ChannelConfig):
    """A pipeline spec's ``channel:`` section: the :class:`ChannelConfig` every path crosses, plus the path
    the pipeline's embeddings take (images, and sentences with ``text.link: embedding``).

    ``path: analog`` (the default) sends ``k_symbols`` PCA coefficients of each embedding
    (:class:`~ragsc.channel.AnalogLink`). ``path: cat`` sends it through the trained channel-aware codec saved
    in the folder ``cat`` (:class:`~ragsc.channel.CATLink`; ``CATCodec.save``'s ``config.json`` +
    ``model.safetensors``, a path relative to the working directory): each item's length is the fewest
    symbols whose calibrated cosine reaches ``cat_quality`` at the SNR (the codec's rate table), or the fixed
    ``cat_symbols``; ``k_symbols`` is then not what the pipeline spends (see
    :attr:`~ragsc.pipelines.Transmission.channel_uses_per_item`). The paths themselves read only the
    :class:`ChannelConfig` fields.
    """

    path: Literal["analog", "cat"] = Field("analog", description="analog: k_symbols PCA coefficients; "
                                           "cat: the trained CAT codec in the folder `cat`")
    cat: str | None = Field(None, description="folder of the CAT codec (CATCodec.save: config.json + "
                            "model.safetensors); path: cat only")
    cat_quality: float = Field(0.9, gt=0.0, le=1.0, allow_inf_nan=False, description="the rate policy's "
                               "target: fewest symbols whose calibrated mean cosine reaches it")
    cat_symbols: int | None = Field(None, ge=1, le=1_000_000, description="a fixed number of complex "
                                    "symbols per item (one of the codec's levels) instead of the rate policy")
    cat_pilots: int = Field(0, ge=0, le=1024, description="0: both ends know the SNR; >= 2: the receiver "
                            "estimates it from that many pilots per item (counted as channel uses)")

    @field_validator("cat")
    @classmethod
    def _folder(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("channel.cat is the codec's folder, got an empty string")
        return None if v is None else v.strip()

    @model_validator(mode="after")
    def _cat_settings(self) -> PipelineChannelConfig:
        fields = type(self).model_fields
        if self.path == "cat":
            if self.cat is None:
                raise ValueError("path 'cat' needs the codec: set channel.cat to the folder CATCodec.save "
                                 "wrote (config.json + model.safetensors), or use path: analog")
            if self.cat_symbols is not None and self.cat_quality != fields["cat_quality"].default:
                raise ValueError("channel.cat_symbols (a fixed length) and channel.cat_quality (the rate "
                                 "policy's target) exclude each other: set one of them")
        else:
            stray = [name for name in CAT_FIELDS if getattr(self, name) != fields[name].default]
            if stray:
                verb, it = ("applies", "it") if len(stray) == 1 else ("apply", "them")
                raise ValueError(f"{', '.join('channel.' + n for n in stray)} {verb} only to path: cat "
                                 f"(channel.path is {self.path!r}): set channel.path: cat or remove {it}")
        if self.cat_pilots == 1:
            raise ValueError("channel.cat_pilots must be 0 (the SNR is known) or >= 2 (one pilot cannot "
                             "estimate the noise)")
        return self


class KBRef(Config):
    """A knowledge base the receiver reads: a bare name lives in ``RAGSC_HOME/kb/NAME``, else a path.

    ``build: default`` builds the embedded default's KB of that scope when it is missing and keeps
    it in line with the recipe (see :mod:`ragsc.kb.default`); ``build: null`` requires it
    to exist.
    """

    path: str
    scope: Literal["local", "global"] = "global"
    build: Literal["default"] | None = None


class DecoderConfig(Config):
    """The receiver's decoders and retrieval."""

    rag: bool = True
    k: int = Field(4, ge=1, le=64, description="neighbours retrieved per received item")
    fusion: Fusion = FUSION_DEFAULT
    text: Literal["fast", "lm"] = Field("fast", description="sentences sent as embeddings (text.link: "
                                        "embedding): fast: GRU / re-ranked retrieval; lm: a causal LM writes "
                                        "(the token link decodes by beam search with decoder.lm instead)")
    vqa: Literal["head", "lm", "open"] = Field("head", description="head: trained closed-vocabulary "
                                               "answers (easy-VQA); lm: the LM answers from the retrieved "
                                               "captions; open: open-vocabulary answers for photos "
                                               "(ragsc.decoders.photo_text)")
    caption: Literal["retrieved", "open"] = Field("retrieved", description="retrieved: the top retrieved "
                                                  "image's caption; open: a caption from what the encoder "
                                                  "recognises and the retrieved captions "
                                                  "(ragsc.decoders.photo_text)")
    describe: Literal["embedding", "photo"] = Field("embedding", description="what open captions and "
                                                    "answers read: the received embedding, or (image.link: "
                                                    "jscc) the decoded photo, embedded again at the receiver")
    image_copy_threshold: float | None = Field(0.7, ge=-1.0, le=1.0, description="show the best retrieved "
                                               "image when its cosine is at least this (retrieve or "
                                               "generate); null: always generate")
    lm: str = Field("smollm2", description="'smollm2' (embedded), 'hf:<dir|id>' of a causal LM, "
                     "or 'compressed:<dir>' (ragsc compress lm)")
    weights: str | None = Field(None, description="a decoders folder, `ragsc decoders train --out DIR` "
                                "(default: the shipped one)")


class TextLinkConfig(Config):
    """How a pipeline sends sentences (:mod:`ragsc.channel.token_link`, :mod:`ragsc.decoders.token_decoder`).

    ``token`` (the default): each sentence as a variable-length sequence of ``symbols_per_token``
    complex symbols per token of the LM's tokenizer plus a ``header_symbols`` length header, decoded by
    beam search over channel likelihood + the LM's prior (``decoder.lm``), RAG from the KBs'
    sentences. ``embedding``: the sentence's embedding in ``channel.k_symbols`` symbols, decoded from
    the KBs and the trained decoders (the ``semantic-embedding`` baseline).
    """

    link: Literal["token", "embedding"] = "token"
    symbols_per_token: int = Field(4, ge=1, le=64, description="complex symbols per token")
    header_symbols: int = Field(16, ge=1, le=256, description="complex symbols of the length header")
    gain_symbols: int = Field(2, ge=1, le=64, description="complex symbols of the frame's gain (lattice "
                              "codebook only)")
    max_tokens: int = Field(128, ge=1, le=4096, description="tokens per frame; a longer sentence is "
                            "sent in several frames (reported in Output.meta)")
    beam: int = Field(4, ge=1, le=64, description="hypotheses kept per sentence")
    lm_weight: float = Field(1.0, ge=0.0, allow_inf_nan=False, description="weight of the LM's log-prior")
    rag_prior: float = Field(0.5, gt=0.0, lt=1.0, description="RAG: prior probability that a sentence is "
                             "one the KBs hold")
    length_candidates: int = Field(1, ge=1, le=16, description="lengths a sentence is read at where the "
                                   "header is in doubt, decided with the tokens (1: trust the header)")
    codebook: Literal["lattice", "gaussian"] = Field(
        "lattice", description="token codewords: lattice points, the frequent (low-id) tokens on the "
        "low-energy shells, each frame scaled to unit power (its gain in the header); or i.i.d. Gaussian")
    codebook_seed: int = Field(0, description="seed of the Gaussian codebook and of the header's codewords "
                               "(both ends rebuild them)")


class Limits(Config):
    """The most one call may hand ragsc: a pipeline spec's ``limits:`` section (defaults: :data:`LIMITS`).

    Each item and each batch is checked where it enters (:mod:`ragsc.checks` says where), before the work
    it would cost; past a limit an :class:`~ragsc.errors.InputError` names the item, its size and the
    limit. Raise them in a spec for a bigger machine; what the defaults cost (time, memory) is measured in
    the reliability guide.
    """

    text_chars: int = Field(100_000, ge=1, le=100_000_000, description="characters per text: bounds the "
                            "tokenizer's work (an encoder reads its model's context, the rest is cut)")
    text_tokens: int = Field(512, ge=1, le=1_000_000, description="LM tokens per sentence on the token "
                             "link, all its frames together: the receiver's beam search grows with them")
    image_pixels: int = Field(40_000_000, ge=1, le=178_956_970, description="pixels per image (width x "
                              "height), read from the file's header before it is decoded; at most "
                              "178,956,970, where Pillow refuses an image as a decompression bomb")
    batch_items: int = Field(256, ge=1, le=1_000_000, description="items per transmit() / run() call")
    questions: int = Field(16, ge=1, le=10_000, description="questions asked about one image (each costs "
                           "the receiver's decoders a pass, an open answer several LM passes)")
    question_chars: int = Field(500, ge=1, le=100_000, description="characters per question")
    batch_tokens: int = Field(4096, ge=1, le=100_000_000, description="LM tokens per transmit() / run() "
                              "call on the token link, its sentences together (4,096: 32 full frames of "
                              "128 tokens, one beam-search pass of 128 rows at beam 4)")


LIMITS = Limits()  # the defaults: what a call may hand ragsc outside a pipeline spec


class ImageLinkConfig(Config):
    """How a pipeline sends its images' pixels (their embeddings cross ``channel.path`` in any case):
    ``embedding`` (the easy-VQA specs), none, the receiver draws an image from the embedding and its
    neighbours; ``jscc``, the photo crosses the image JSCC (:class:`~ragsc.channel.jscc.JSCCLink`) at
    ``ratio`` with the codec in ``codec`` (default: the shipped one), and with RAG a retrieved KB photo that
    explains what arrived is returned exactly, else the top one is side information. An image's channel
    uses are its embedding's plus its photo's."""

    link: Literal["embedding", "jscc"] = "embedding"
    ratio: str = Field("1/12", description="bandwidth ratio, one the codec sends (shipped: 1/48, 1/12, 1/6)")
    codec: str | None = Field(None, description="a folder of `ragsc jscc train`; null: the shipped one")
    tile: int = Field(1024, ge=64, le=4096, multiple_of=8, description="largest tile side in pixels")

    @field_validator("ratio", mode="before")
    @classmethod
    def _ratio(cls, v):
        try:
            parse_ratio(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v.strip() if isinstance(v, str) else str(v)

    @model_validator(mode="after")
    def _jscc_only(self) -> ImageLinkConfig:
        default = type(self).model_fields
        stray = [n for n in ("ratio", "codec", "tile") if getattr(self, n) != default[n].default]
        if self.link != "jscc" and stray:
            verb = "applies" if len(stray) == 1 else "apply"
            raise ValueError(f"{', '.join('image.' + n for n in stray)} {verb} only to image.link: jscc")
        return self


class PipelineSpec(Config):
    """A pipeline as declared in ``pipelines/<task>.yaml``."""

    name: str
    task: Literal["text", "image", "vqa", "multitask"]
    encoder: EncoderConfig = EncoderConfig()
    channel: PipelineChannelConfig = PipelineChannelConfig()
    knowledge_bases: list[KBRef] = Field(default_factory=list)
    decoder: DecoderConfig = DecoderConfig()
    text: TextLinkConfig = TextLinkConfig()
    image: ImageLinkConfig = ImageLinkConfig()
    seed: int = Field(0, description="the pipeline's seed: it seeds the channel of every transmission "
                      "(a call's seed= overrides it), so the same spec gives the same results")
    limits: Limits = LIMITS

    @field_validator("channel")
    @classmethod
    def _fixed_budget(cls, v: PipelineChannelConfig) -> PipelineChannelConfig:
        if v.k_symbols is None:  # every path is compared at the same number of channel uses
            raise ValueError("a pipeline sends k_symbols complex symbols per item in every path: "
                             "set a number")
        return v

    @model_validator(mode="after")
    def _one_seed(self) -> PipelineSpec:
        # one seed per pipeline, the top-level one (the pipeline's link is seeded with it); a channel.seed
        # may only repeat it
        if "seed" in self.channel.model_fields_set and self.channel.seed != self.seed:
            raise ValueError(f"channel.seed ({self.channel.seed}) differs from the pipeline's seed "
                             f"({self.seed}): a pipeline has one seed, set it at the top level (`seed:`)")
        return self

    @model_validator(mode="after")
    def _text_decoder_used(self) -> PipelineSpec:
        # decoder.text decodes sentences sent as embeddings; the token link's beam search never reads it,
        # so asking for the LM there would be silently ignored (the default, printed by resolved(), passes)
        if self.text.link == "token" and self.decoder.text != "fast":
            raise ValueError(f"decoder.text: {self.decoder.text!r} chooses how sentences sent as embeddings "
                             "are decoded (text: {link: embedding}); on the token link (the default) they "
                             "are decoded by beam search with decoder.lm: remove decoder.text or set "
                             "text.link: embedding")
        return self

    @model_validator(mode="after")
    def _describe_needs_photos(self) -> PipelineSpec:
        # the decoded photo exists only when the pixels crossed the image JSCC, and only open captions and
        # answers read it
        dec = self.decoder
        if dec.describe == "photo":
            if self.image.link != "jscc":
                raise ValueError("decoder.describe: photo reads the decoded photo, which only image.link: "
                                 "jscc sends; set image.link: jscc or decoder.describe: embedding")
            if "open" not in (dec.caption, dec.vqa):
                raise ValueError("decoder.describe: photo applies to open captions or answers: set "
                                 "decoder.caption: open or decoder.vqa: open")
        return self

    def resolved(self) -> dict:
        """The spec with every default filled in, as a spec file would write it (``ragsc spec validate``);
        the channel's seed is the pipeline's, so it is written once, at the top level."""
        return self.model_dump(exclude={"channel": {"seed"}})

    @field_validator("knowledge_bases")
    @classmethod
    def _one_per_scope(cls, v: list[KBRef]) -> list[KBRef]:
        scopes = [k.scope for k in v]
        if len(set(scopes)) != len(scopes):
            raise ValueError(f"at most one local and one global knowledge base, got scopes {scopes}")
        return v


M = TypeVar("M", bound=BaseModel)


def validate(model: type[M], data: dict, source: str = "config") -> M:
    """Validate ``data`` into ``model``; a failure raises :class:`ConfigError` naming every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid {model.__name__}: {join(problems(exc))}") from None


def load_yaml(path: str | Path, model: type[M], what: str) -> M:
    """Read a YAML file that holds one ``model`` (``what`` names it in errors: "pipeline spec").

    A missing file, invalid YAML, a document that is not a mapping or a field that fails validation
    raises :class:`ConfigError` naming the file (and the field).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise ConfigError(f"{path}: not UTF-8 text (byte {byte:#04x} at offset {exc.start}): save the {what} "
                          "as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {what} must be a YAML mapping, got {type(data).__name__}")
    return validate(model, data, str(path))


def load_pipeline_spec(path: str | Path) -> PipelineSpec:
    """Read and validate a YAML pipeline spec."""
    return load_yaml(path, PipelineSpec, "pipeline spec")
