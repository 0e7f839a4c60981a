"""From a pipeline spec to its parts: the spec itself (a shipped name, a YAML path, a dict), the encoder, the
decoders, the CAT codec, the semantic link, the image JSCC and the knowledge bases.

A bare name (``"multitask"``) is one of the shipped specs, ``pipelines/<name>.yaml`` of the assets
(:func:`~ragsc._assets.asset_dir`), as open_clip names its model configs; a path is read as it is.
:func:`build_parts` builds what a spec asks for, in the order its errors are checked (encoder, decoders
against the encoder, CAT codec, link, knowledge bases), using already-built parts where given (tests,
notebooks and sweeps share one encoder and KB this way). :class:`~ragsc.pipelines.Pipeline` composes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ragsc._assets import asset_dir
from ragsc.channel import AnalogLink, CATCodec, CATLink, JSCCCodec, JSCCLink
from ragsc.channel.path import path_configs
from ragsc.config import PipelineSpec, load_pipeline_spec, validate
from ragsc.decoders import load_decoders
from ragsc.decoders.lm import SharedLM
from ragsc.errors import ConfigError, KBError, ModelLoadError


def shipped_specs() -> list[str]:
    """The names of the shipped pipeline specs (``pipelines/<name>.yaml``), sorted."""
    return sorted(p.stem for p in asset_dir("pipelines").glob("*.yaml"))


def load_spec(config: str | Path | dict | PipelineSpec) -> PipelineSpec:
    """A validated spec from a shipped spec's name, a YAML path, a dict or a :class:`PipelineSpec`.

    A string without a folder or a suffix that is not an existing file is a shipped spec's name; an
    unknown one is a :class:`~ragsc.errors.ConfigError` listing the shipped names.
    """
    if isinstance(config, PipelineSpec):
        return config
    if isinstance(config, dict):
        return validate(PipelineSpec, config, "pipeline spec")
    path = Path(config)
    if isinstance(config, str) and not path.is_file() and os.sep not in config and "/" not in config \
            and not path.suffix:
        names = shipped_specs()
        if config not in names:
            raise ConfigError(f"unknown pipeline spec {config!r}: the shipped ones are {', '.join(names)}; "
                              "or give the path of a YAML spec")
        path = asset_dir("pipelines") / f"{config}.yaml"
    return load_pipeline_spec(path)


@dataclass
class Parts:
    """What a pipeline is made of, built from its spec (see :func:`build_parts`)."""

    encoder: object
    decoders: object
    cat: CATCodec | None
    retriever: object | None
    lm: object


def build_parts(spec: PipelineSpec, *, encoder=None, local=None, global_=None, decoders=None, lm=None,
                cat: CATCodec | None = None) -> Parts:
    """Build the parts ``spec`` asks for; a part given is used as it is (``cat``: the codec of
    ``channel.path: cat``, default loaded from ``channel.cat``; ``lm``: default ``decoder.lm``, a spec string
    the decoders load on first use, once for all of them).

    Raises
    ------
    ConfigError, ModelLoadError, KBError
        A part does not fit the spec or the others (each message names the spec field and the fix).
    """
    from ragsc.encoders import load_encoder

    encoder = encoder or load_encoder(spec.encoder.spec, batch_size=spec.encoder.batch_size,
                                      device=spec.encoder.device)
    decoders = decoders or load_decoders(spec.decoder.weights)
    decoders.check_encoder(encoder)
    cat = cat_codec(spec, encoder, cat) if spec.channel.path == "cat" else None
    # k must fit the basis, the codec serve the channel: fail before encoding
    link = semantic_link(spec, decoders, cat)
    if isinstance(link, AnalogLink):
        link.k_symbols_for(decoders.pca.components.shape[1])
    # one LM object for every holder (text and VQA decoders, the sentence path), loaded on first use
    lm = lm or SharedLM.of(spec.decoder.lm)
    return Parts(encoder, decoders, cat, open_retriever(spec, encoder, local, global_), lm)


def semantic_link(spec: PipelineSpec, decoders, cat: CATCodec | None, channel: str | None = None,
                  seed: int | None = None) -> AnalogLink | CATLink:
    """The spec's semantic path over its channel (``channel`` overrides its kind), seeded with the spec's
    seed (or ``seed``): the analog link sending ``k_symbols`` PCA coefficients of the decoders' basis, or
    (``channel.path: cat``) the CAT link of ``cat`` with the spec's rate policy."""
    update = {"seed": spec.seed if seed is None else seed}
    if channel is not None:
        update["channel"] = channel
    c = spec.channel
    if c.path == "analog":
        return AnalogLink(c, transform=decoders.pca, **update)
    (channel_config,) = path_configs(c, update, what="link")  # a bad channel name is the call's error
    try:
        return CATLink(cat, channel_config, quality=c.cat_quality, n_symbols=c.cat_symbols,
                       n_pilots=c.cat_pilots)
    except ConfigError as exc:
        raise ConfigError(f"pipeline {spec.name!r}: the CAT codec (channel.cat = {c.cat!r}) cannot "
                          f"serve this link: {exc}") from None


def image_link(spec: PipelineSpec, codec: JSCCCodec, config) -> JSCCLink:
    """The spec's image JSCC path (``image.link: jscc``) over the channel ``config`` of the semantic link."""
    try:
        return JSCCLink(codec, config, ratio=spec.image.ratio, tile=spec.image.tile, limits=spec.limits)
    except ConfigError as exc:
        raise ConfigError(f"pipeline {spec.name!r}: its image codec cannot serve image.link jscc here "
                          f"(image.ratio {spec.image.ratio}, channel {config.channel}): {exc}") from None


def image_codec(spec: PipelineSpec, codec: JSCCCodec | None = None) -> JSCCCodec | None:
    """The image JSCC codec of ``image.link: jscc`` (``codec`` if given, else ``image.codec`` or the shipped
    one), ``None`` for ``image.link: embedding`` or a task without images."""
    if spec.image.link != "jscc" or spec.task == "text":
        return None
    if codec is not None:
        return codec
    from ragsc.channel.jscc.link import default_codec_dir

    folder = spec.image.codec or default_codec_dir()
    try:
        return JSCCCodec.load(folder)
    except ModelLoadError as exc:
        hint = ("set image.codec to the folder `ragsc jscc train --out` wrote" if spec.image.codec else
                "the shipped codec is missing from this install: set image.codec, or image.link: embedding")
        raise ModelLoadError(f"pipeline {spec.name!r}: image.codec: {exc}; {hint}") from None


def open_retriever(spec: PipelineSpec, encoder, local=None, global_=None):
    """A :class:`~ragsc.kb.HybridRetriever` over the given KBs and those the spec names (``None``: no KB)."""
    from ragsc.kb import HybridRetriever

    kbs = {"local": local, "global": global_}
    for ref in spec.knowledge_bases:
        if kbs[ref.scope] is None:
            kbs[ref.scope] = open_kb(ref, encoder)
    if kbs["local"] is None and kbs["global"] is None:
        return None
    return HybridRetriever(kbs["local"], kbs["global"], fusion=spec.decoder.fusion, encoder=encoder)


def cat_codec(spec: PipelineSpec, encoder, codec: CATCodec | None) -> CATCodec:
    """The CAT codec of ``channel.path: cat``: ``codec`` or the one saved in ``channel.cat``, checked against
    the pipeline's encoder and the spec's CAT settings (each error names the spec field and the fix)."""
    c = spec.channel
    where = f"pipeline {spec.name!r}: channel.cat = {c.cat!r}"
    if codec is None:
        folder = Path(c.cat).expanduser()
        if not folder.is_dir():
            raise ModelLoadError(f"{where}: no such folder ({folder.absolute()}); point channel.cat at the "
                                 "folder CATCodec.save wrote (config.json + model.safetensors), or use "
                                 "channel.path: analog")
        try:
            codec = CATCodec.load(folder)
        except ModelLoadError as exc:
            raise ModelLoadError(f"{where}: {exc}") from None
    elif not isinstance(codec, CATCodec):
        raise ConfigError(f"pipeline {spec.name!r}: cat= takes a CATCodec, got {type(codec).__name__}")
    cfg, dim = codec.config, encoder.dim
    if (cfg.token_dim, cfg.target_dim) != (dim, dim):
        raise ConfigError(f"{where}: the codec maps token_dim={cfg.token_dim} to target_dim="
                          f"{cfg.target_dim}, but the pipeline's encoder ({encoder.spec}) has dimension "
                          f"{dim}: train a CAT on this encoder's embeddings (token_dim = target_dim = {dim}) "
                          "or change encoder.spec")
    if c.cat_symbols is not None and c.cat_symbols not in cfg.levels:
        raise ConfigError(f"pipeline {spec.name!r}: channel.cat_symbols = {c.cat_symbols} is not one of the "
                          f"codec's levels {list(cfg.levels)} (channel.cat = {c.cat!r}): choose one of them, "
                          "or remove cat_symbols to use its rate policy")
    if c.cat_symbols is None and cfg.calibration is None:
        raise ConfigError(f"{where}: the codec has no rate table for channel.cat_quality: calibrate it "
                          "(ragsc.distill.cat.calibrate, then save it again) or set channel.cat_symbols to "
                          f"one of its levels {list(cfg.levels)}")
    if c.channel not in cfg.channels:
        raise ConfigError(f"{where}: the codec was trained on {', '.join(cfg.channels)}, not channel.channel "
                          f"= {c.channel!r}: choose one of them, or train a codec on {c.channel}")
    if c.csi != "perfect" or c.equalizer != cfg.equalizer:
        raise ConfigError(f"{where}: the codec decodes {cfg.equalizer} equalisation with perfect CSI: set "
                          f"channel.csi: perfect and channel.equalizer: {cfg.equalizer}")
    return codec


def open_kb(ref, encoder):
    """The knowledge base a spec's ``knowledge_bases`` entry names, opened (built first with ``build:
    default``); :class:`~ragsc.errors.KBError` when it is not there."""
    from ragsc.kb import KnowledgeBase
    from ragsc.kb.manifest import resolve_path

    path = resolve_path(ref.path)
    if ref.build == "default":  # built on first use, then kept in line with the recipe
        from ragsc.kb.default import build_default_kb

        return build_default_kb(path, encoder, ref.scope, progress=True)
    if (path / "manifest.json").is_file():
        return KnowledgeBase.open(path, encoder=encoder)
    raise KBError(f"knowledge base {ref.path!r} ({ref.scope}) not found at {path}; "
                  "build it with `ragsc kb create` and `ragsc kb ingest`, "
                  "or set `build: default` in the spec for the embedded default's corpora")
