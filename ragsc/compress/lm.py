"""The decoder side of adaptive compression: a generative decoder's causal LM fitted to a device budget.

The token link's receiver (:class:`~ragsc.decoders.token_decoder.ChannelLMDecoder`) spends nearly all of a
sentence's decode in its LM (SmolLM2-135M: 94-96 %), and the LM is most of the receiver's memory (540 MB
in float32). Methods (:data:`~ragsc.compress.config.LM_METHODS`), each on the whole model:

* ``int8-dynamic``: every ``nn.Linear`` (attention, MLP, the output head) with int8 weights, one scale per
  output channel, activations quantised on the fly; the token embedding with uint8 rows (weight-only).
  A tied output head and embedding become two int8 copies (the head is a Linear, the embedding a lookup);
* ``fp16`` / ``bf16``: the model cast (the decoder reads the logits in float32);
* ``none``: the float model, the reference point.

``keep_float`` leaves named layers of an int8 model in float32 (``("down_proj", "lm_head")``: SmolLM2's
MLP output projections, whose inputs carry the outliers int8 handles worst, and the output head).

How a candidate is judged (:func:`lm_front`, all on this machine):

* **size**: bytes of the safetensors file it is saved as (a tied weight stored once);
* **latency**: milliseconds of one cached next-token step at ``batch`` rows over a 24-token context (the
  beam search's inner call: rows = sentences x beams), the median of ``repeats`` runs;
* **score**: BLEU-1 of held-out sentences (WordNet examples, never trained on) sent over the token link
  and decoded with that LM, the mean over a few SNRs; every candidate decodes the *same* received symbols;
* **agreement**: the share of those sentences decoded exactly as the float LM decodes them (a front's
  tie-break), and sentences per second of the whole decode.

:func:`~ragsc.compress.pareto.choose` picks the best-scoring point within a
:class:`~ragsc.compress.config.Budget` (``max_ms`` counts one step at ``budget.batch`` rows).
:func:`save_compressed_lm` saves it as every model is (:mod:`ragsc.saved`, kind ``compressed-lm``);
:func:`load_compressed_lm`, i.e. ``load_lm("compressed:<dir>")`` or a pipeline spec's
``decoder.lm: compressed:<dir>``, loads the base LM by its spec, checks its fingerprint, replays the method
and loads the stored state.
"""

from __future__ import annotations

import copy
import hashlib
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from pydantic import Field

from ragsc.compress.config import LMCompressionConfig
from ragsc.compress.measure import median_ms, threads
from ragsc.compress.quantize import int8_dynamic, quiet
from ragsc.compress.serialize import decode_state, encode_state, stored_bytes
from ragsc.config import Config
from ragsc.decoders.lm import CausalLM, as_lm
from ragsc.errors import ConfigError, InputError, ModelLoadError
from ragsc.saved import Saved, loading, parse_config, read, require, save

KIND = "compressed-lm"
_HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}
ALIASES = "#aliases"  # the state description's entry of tied weights stored once


# ------------------------------------------------------------------------------------------ compress
def kept_layers(model: torch.nn.Module, keep_float: Sequence[str]) -> list[str]:
    """Full names of the Linear / Embedding layers that ``keep_float`` names (by their last part or their
    full name); :class:`ConfigError` for an entry that names none."""
    layers = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))]
    out = []
    for entry in keep_float:
        hits = [n for n in layers if n == entry or n.rsplit(".", 1)[-1] == entry]
        if not hits:
            raise ConfigError(f"keep_float: {entry!r} names no Linear or Embedding layer of the LM (e.g. "
                              f"{', '.join(sorted({n.rsplit('.', 1)[-1] for n in layers})[:6])})")
        out += hits
    return out


def _apply(model: torch.nn.Module, config: LMCompressionConfig) -> torch.nn.Module:
    """``config.method`` applied to ``model`` in place (eval mode, no gradients)."""
    model.eval().requires_grad_(False)
    method = config.method
    if method == "int8-dynamic":
        int8_dynamic(model, kept_layers(model, config.keep_float))
    elif method in _HALF:
        model.to(_HALF[method])
    elif method != "none":
        raise ConfigError(f"unknown LM compression method {method!r}")
    return model


class CompressedLM(CausalLM):
    """A :class:`~ragsc.decoders.lm.CausalLM` over a compressed copy of a base LM.

    Attributes
    ----------
    config
        The :class:`~ragsc.compress.config.LMCompressionConfig` it was made by.
    base
        ``{"spec", "fingerprint"}`` of the float LM it started from.
    params
        Parameters of the model (int8 weights counted like float ones: quantisation does not remove any).
    """

    kind, format_version = KIND, 1

    def __init__(self, model, tokenizer, name: str, config: LMCompressionConfig, base: dict,
                 params: int, info: dict | None = None) -> None:
        super().__init__(model, tokenizer, name)
        self.config, self.base, self.params, self.info = config, base, params, info or {}

    def to_saved(self, figures: dict | None = None, info: dict | None = None) -> Saved:
        """The LM as :mod:`ragsc.saved` writes it (the front's ``figures`` and ``info`` in its ``info``)."""
        tensors, meta = self.state()
        record = SavedLM(config=self.config, base_fingerprint=self.base["fingerprint"], state=meta,
                         params=self.params)
        all_info = {**self.info, **(info or {})}
        if figures is not None or "figures" not in all_info:
            all_info["figures"] = figures or {}
        return Saved(self.kind, self.format_version, record.model_dump(mode="json"), tensors, all_info)

    @classmethod
    def from_saved(cls, saved: Saved) -> CompressedLM:
        """Load the base LM by its spec, check its fingerprint, replay the method, load the stored state."""
        return _from_saved(saved)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
        """The model's state as plain tensors and their description; a weight tied to an earlier one
        (SmolLM2's output head and embedding, when not quantised apart) is stored once, its name listed
        in the description's ``#aliases``."""
        state = self.model.state_dict()
        seen: dict[tuple, str] = {}
        aliases: dict[str, str] = {}
        for name, t in list(state.items()):
            if torch.is_tensor(t) and not t.is_quantized and t.numel():
                key = (t.data_ptr(), t.dtype, tuple(t.shape), tuple(t.stride()))
                if key in seen:
                    aliases[name] = seen[key]
                    del state[name]
                else:
                    seen[key] = name
        tensors, meta = encode_state(state)
        meta[ALIASES] = {"kind": "aliases", "aliases": aliases}
        return tensors, meta

    @property
    def fingerprint(self) -> str:  # type: ignore[override]
        """The base's fingerprint and the config: equal iff the same compression of the same weights."""
        how = f"{self.base['fingerprint']}|{self.config.model_dump_json(exclude={'lm'})}"
        return hashlib.sha256(how.encode()).hexdigest()[:32]


def compress_lm(config: LMCompressionConfig, lm: CausalLM | None = None) -> CompressedLM:
    """A copy of ``lm`` (default: ``load_lm(config.lm)``) compressed by ``config.method`` (``lm`` unchanged).

    Raises :class:`ConfigError` when ``lm`` is not the LM ``config.lm`` names.
    """
    if lm is None:
        lm = as_lm(config.lm)
    if isinstance(lm, CompressedLM):
        raise ConfigError(f"{lm.name} is compressed already ({lm.config.name}); compress its base, "
                          f"{lm.base['spec']!r}")
    if lm.name != config.lm:
        raise ConfigError(f"the config compresses the LM {config.lm!r}, the LM given is {lm.name!r}")
    params = sum(p.numel() for p in lm.model.parameters())
    base = {"spec": lm.name, "fingerprint": lm.fingerprint}
    model = _apply(copy.deepcopy(lm.model), config)
    return CompressedLM(model, lm.tokenizer, f"{lm.name} ({config.name})", config, base, params)


# ------------------------------------------------------------------------------------------ on disk
class SavedLM(Config):
    """What a compressed LM's ``config.json`` holds as its ``config`` (figures go in its ``info``)."""

    config: LMCompressionConfig
    base_fingerprint: str
    state: dict[str, dict] = Field(default_factory=dict, description="encode_state's description")
    params: int = Field(ge=0)


def save_compressed_lm(folder: str | Path, lm: CompressedLM, figures: dict | None = None,
                       info: dict | None = None, *, overwrite: bool = False) -> Path:
    """Save ``lm`` into ``folder`` (:func:`ragsc.saved.save`; refused when it holds other files); returns the
    folder."""
    return save(lm.to_saved(figures, info), folder, overwrite=overwrite)


def load_compressed_lm(folder: str | Path) -> CompressedLM:
    """The compressed LM saved in ``folder`` (what ``load_lm("compressed:<folder>")`` returns).

    Raises :class:`ModelLoadError` when the folder is not a compressed LM, its weights are missing or do
    not fit, or the base spec now loads other weights than the ones compressed.
    """
    require(folder, KIND, "compressed LM", "make one with `ragsc compress lm --lm SPEC`")
    return CompressedLM.from_saved(read(folder))


def _from_saved(saved: Saved) -> CompressedLM:
    from ragsc.decoders.lm import load_lm

    folder, tensors = saved.folder, saved.tensors
    record = parse_config(SavedLM, saved.config, folder, "compressed LM")
    with loading(folder, "compressed LM's base"):  # a base of compressed:<this folder> is refused
        base = load_lm(record.config.lm)  # a new object: the base LM of any other holder stays float
    if base.fingerprint != record.base_fingerprint:
        raise ModelLoadError(f"{folder} compressed the LM {record.config.lm!r} with fingerprint "
                             f"{record.base_fingerprint}; that spec now loads {base.fingerprint}: compress "
                             "it again")
    meta = dict(record.state)
    aliases = meta.pop(ALIASES, {}).get("aliases", {})
    model = _apply(base.model, record.config)
    try:
        with quiet():  # quantised modules' load warns of torch.ao's deprecation
            missing, unexpected = model.load_state_dict(decode_state(tensors, meta), strict=False)
        if set(missing) != set(aliases) or unexpected:
            raise RuntimeError(f"missing {sorted(set(missing) - set(aliases))[:3]}, unexpected "
                               f"{sorted(unexpected)[:3]}")
    except (RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"{folder}: the stored state does not fit {record.config.lm!r} "
                             f"({record.config.name}): {exc}") from None
    return CompressedLM(model.eval(), base.tokenizer, f"compressed:{folder}", record.config,
                        {"spec": record.config.lm, "fingerprint": record.base_fingerprint}, record.params,
                        info=saved.info)


# ------------------------------------------------------------------------------------------ measure
def load(folder: str) -> CompressedLM:
    """The registry's loader for ``compressed:<dir>`` (:data:`ragsc.registry.LMS`)."""
    if not folder:
        raise InputError("a compressed LM spec names its folder: compressed:<dir>")
    return load_compressed_lm(folder)


def step_ms(lm: CausalLM, batch: int, *, context: int = 24, repeats: int = 5,
            n_threads: int | None = None, seed: int = 0) -> float:
    """Median milliseconds of one cached next-token step of ``lm`` at ``batch`` rows after ``context``
    tokens (the cache is copied before each run, so every run extends the same context)."""
    import inspect

    g = torch.Generator().manual_seed(seed)
    vocab = min(lm.n_logits, len(lm.tokenizer))
    ids = torch.randint(0, vocab, (batch, context + 1), generator=g)
    kw = "cache" if "cache" in inspect.signature(lm.model.forward).parameters else "past_key_values"
    with threads(n_threads), torch.inference_mode():
        out = lm.model(input_ids=ids[:, :context], use_cache=True)
        cache = out.get("cache") or out.past_key_values
    return median_ms(lambda c: lm.model(input_ids=ids[:, context:], use_cache=True, **{kw: c}),
                     repeats=repeats, n_threads=n_threads, setup=lambda: copy.deepcopy(cache))


@dataclass
class LinkData:
    """What an LM front scores on: held-out ``sentences`` sent over the token link at each of ``snrs``."""

    sentences: list[str]
    snrs: tuple[float, ...] = (5.0, 10.0, 20.0)
    symbols_per_token: int = 4
    channel: str = "awgn"
    seed: int = 0

    @classmethod
    def default(cls, sentences: int = 100, **kw) -> LinkData:
        """``sentences`` held-out WordNet example sentences (InputError without wordnet-base)."""
        from ragsc.datasets.heldout import wordnet_examples

        return cls(wordnet_examples(sentences), **kw)

    def path(self, lm: CausalLM):
        """The token-link path that decodes with ``lm``."""
        from ragsc.config import ChannelConfig, TextLinkConfig
        from ragsc.pipelines.sentences import SentencePath

        return SentencePath(TextLinkConfig(symbols_per_token=self.symbols_per_token),
                            ChannelConfig(channel=self.channel, seed=self.seed), lm, owner="LM compression")


@dataclass
class LMMeasurement:
    """The figures of one compressed LM (see the module docstring)."""

    size_bytes: int
    params: int
    ms: dict[int, float]  # rows -> median milliseconds of one cached next-token step
    bleu: dict[float, float]  # SNR (dB) -> BLEU-1 of the decoded held-out sentences
    agreement: float  # share of decodes equal to the float LM's
    sentences_per_s: float  # the whole decode (beam search, channel likelihood and LM), all SNRs

    @property
    def score(self) -> float:
        return statistics.fmean(self.bleu.values())

    @property
    def fidelity(self) -> float:
        return self.agreement

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6

    def as_dict(self) -> dict:
        return {"size_bytes": self.size_bytes, "params": self.params,
                "ms": {str(b): round(v, 3) for b, v in self.ms.items()},
                "bleu1": {f"{s:g}": v for s, v in self.bleu.items()}, "agreement": self.agreement,
                "sentences_per_s": self.sentences_per_s, "score": self.score}


@dataclass
class _Decodes:
    texts: dict[float, list[str]] = field(default_factory=dict)
    seconds: float = 0.0


def _decode(lm: CausalLM, data: LinkData, received: dict) -> _Decodes:
    path, out = data.path(lm), _Decodes()
    for snr, rx in received.items():
        t0 = time.perf_counter()
        out.texts[snr] = path.receive(rx)
        out.seconds += time.perf_counter() - t0
    return out


def lm_front(configs: Sequence[LMCompressionConfig], *, lm: CausalLM | None = None,
             data: LinkData | None = None, batches: Sequence[int] = (1, 32), repeats: int = 5,
             n_threads: int | None = None, progress: bool = False) -> list:
    """Compress and measure each candidate; a list of :class:`~ragsc.compress.pareto.CompressionPoint`.

    Parameters
    ----------
    configs
        The candidates, all of one LM (``lm.name`` when ``lm`` is given).
    data
        The held-out sentences and link (default: :meth:`LinkData.default`).
    batches, repeats, n_threads
        Step latency at these row counts, median of ``repeats`` runs, with that many torch threads
        (the decode's sentences per second run with the same threads).
    """
    from tqdm.auto import tqdm

    from ragsc.compress.pareto import CompressionPoint
    from ragsc.eval.metrics import bleu

    if not configs:
        raise ConfigError("a front needs at least one candidate compression")
    specs = {c.lm for c in configs}
    if len(specs) != 1:
        raise ConfigError(f"an LM front compresses one LM, the candidates name {sorted(specs)}")
    if not batches or any(int(b) < 1 for b in batches):
        raise ConfigError(f"batch sizes must be >= 1, got {list(batches)}")
    lm = lm or as_lm(specs.pop())
    data = data or LinkData.default()
    if not data.sentences or not data.snrs:
        raise ConfigError("an LM front needs held-out sentences and at least one SNR")
    sender = data.path(lm)
    received = {float(s): sender.send(data.sentences, float(s)) for s in data.snrs}
    with threads(n_threads):
        reference = _decode(lm, data, received)  # the float LM's decodes: what agreement counts against
    points = []
    for config in tqdm(configs, desc="LM compressions", disable=not progress):
        c = compress_lm(config, lm)
        with threads(n_threads):
            decodes = reference if config.method == "none" else _decode(c, data, received)
        same = [a == b for s in received for a, b in zip(decodes.texts[s], reference.texts[s])]
        figures = LMMeasurement(
            stored_bytes(c.state()[0]), c.params,
            {int(b): step_ms(c, int(b), repeats=repeats, n_threads=n_threads) for b in batches},
            {s: float(bleu(decodes.texts[s], data.sentences, 1).mean()) for s in received},
            sum(same) / len(same), len(same) / max(decodes.seconds, 1e-9))
        points.append(CompressionPoint(c, figures))
    return points


def lm_front_table(points: Sequence, budget=None, chosen=None) -> str:
    """The LM front as a table: method, size, step latency per row count, BLEU-1 per SNR, agreement,
    sentences per second, within budget."""
    from ragsc.compress.pareto import within_cell
    from ragsc.report import table

    batches = sorted({b for p in points for b in p.figures.ms})
    snrs = sorted({s for p in points for s in p.figures.bleu})
    rows = []
    for p in points:
        f = p.figures
        rows.append([("* " if p is chosen else "  ") + p.name, f"{f.size_mb:.1f}", f"{f.params:,}",
                     *[f"{f.ms[b]:.1f}" for b in batches], *[f"{f.bleu[s]:.3f}" for s in snrs],
                     f"{f.agreement:.3f}", f"{f.sentences_per_s:.2f}", f"{f.score:.3f}",
                     within_cell(p, budget)])
    header = ["method", "size MB", "parameters", *[f"ms/step @{b}" for b in batches],
              *[f"BLEU-1 {s:g} dB" for s in snrs], "same as float", "sentences/s", "score",
              "within budget"]
    return table(rows, header)
