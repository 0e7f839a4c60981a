"""``ragsc compress encoder | lm``: compression to a device budget (:mod:`ragsc.compress`).

Both commands measure the front of their candidates on this machine (size of the saved weights, latency,
and a score: R@1 figures for an encoder's tower, BLEU-1 over the token link for an LM), print it, and save
the point the budget picks into a new ``--out`` folder (:mod:`ragsc.compress`, :mod:`ragsc.compress.lm`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from ragsc.cli._common import provenance
from ragsc.config import validate
from ragsc.errors import ConfigError
from ragsc.targets import check_folder

app = typer.Typer(help="Compression to a device budget: an encoder's tower or a decoder's LM.",
                  no_args_is_help=True)

DEFAULT_METHODS = {"text": "none,int8-dynamic,int8-static,fp16,bf16",
                   "image": "none,int8-dynamic,int8-static,fp16,bf16,prune,prune+int8-static"}
LM_METHODS = "none,int8-dynamic,fp16,bf16"



@app.command("encoder")
def compress_encoder(
    ctx: typer.Context,
    encoder: str = typer.Option("embedded", help="The base encoder's spec (embedded, student:<dir>)."),
    out: Path = typer.Option(..., help="A new folder for the compression the budget picks; load it with "
                                       "load_encoder('compressed:<out>')."),
    tower: str = typer.Option("text", help="text or image: the tower to compress."),
    methods: str | None = typer.Option(None, help="Comma list of candidates: none, prune, int8-dynamic, "
                                                  "int8-static, fp16, bf16, or prune+<precision> (default: "
                                                  "all for images; all but prune for texts)."),
    budget_mb: float | None = typer.Option(None, "--budget-mb", help="At most this many MB (10^6 bytes) of "
                                                                     "weights."),
    budget_ms: float | None = typer.Option(None, "--budget-ms", help="At most this many ms per forward pass "
                                                                     "at --batch items, on this machine."),
    budget_params: int | None = typer.Option(None, "--budget-params", help="At most this many parameters in "
                                                                           "the tower."),
    batch: int = typer.Option(1, help="The batch size --budget-ms counts at (latency is measured at 1, 64 "
                                      "and this)."),
    prune_keep: float = typer.Option(0.5, help="prune: the share of MACs (or parameters) kept."),
    prune_by: str = typer.Option("macs", help="prune: macs or params."),
    finetune_epochs: int = typer.Option(2, min=0, help="prune: KD fine-tune epochs (0: none)."),
    finetune_images: int = typer.Option(512, min=1, help="prune: easy-VQA train images to fine-tune on."),
    store: Path | None = typer.Option(None, help="prune: fine-tune on a teacher store's images and stored "
                                                 "teacher embeddings instead."),
    sentences: int = typer.Option(500, min=2, help="Held-out WordNet sentences: R@1 against float, and as "
                                  "many definition -> example pairs (gloss R@1), for a text tower."),
    images: int = typer.Option(200, min=2, help="easy-VQA test images that score a tower (caption R@1)."),
    repeats: int = typer.Option(5, min=1, help="Timed runs per latency (the median is reported)."),
    threads: int | None = typer.Option(None, min=1, help="Torch threads while timing (default: torch's)."),
) -> None:
    """Compress an encoder's tower to a device budget: measure the front, save the pick."""
    from ragsc.compress import Budget, CompressionConfig, EvalData, front, front_table, parse_methods
    from ragsc.compress.saved import save_compressed
    from ragsc.encoders import load_encoder

    # every user mistake is refused before the encoder is loaded or anything is measured
    check_folder(out, "--out")
    if tower not in DEFAULT_METHODS:
        raise ConfigError(f"--tower must be text or image, got {tower!r}")
    candidates = parse_methods(methods if methods is not None else DEFAULT_METHODS[tower])
    budget = validate(Budget, {"max_mb": budget_mb, "max_ms": budget_ms, "max_params": budget_params,
                               "batch": batch}, "compress encoder")
    finetune = {"epochs": finetune_epochs, "images": finetune_images,
                "store": str(store) if store is not None else None}
    configs = [validate(CompressionConfig, {"encoder": encoder, "tower": tower, "methods": m,
                                            "prune_keep": prune_keep, "prune_by": prune_by,
                                            "finetune": finetune}, "compress encoder") for m in candidates]
    enc = load_encoder(encoder)
    configs = [c.model_copy(update={"encoder": enc.spec}) for c in configs]
    points = front(enc, configs, data=EvalData.default(sentences, images),
                   batches=sorted({1, 64, batch}), repeats=repeats, n_threads=threads, progress=True)
    chosen = _pick(points, budget, front_table)
    typer.echo(f"budget: {budget.describe()}\npicked: {chosen.describe()}")
    front_rows = [{"methods": p.name, **p.figures.as_dict()} for p in points]
    save_compressed(out, chosen.compressed, figures=chosen.figures.as_dict(),
                    info={"command": provenance(ctx), "budget": budget.model_dump(), "front": front_rows,
                          "threads": threads})
    typer.echo(f"wrote {out}; load it with load_encoder('compressed:{out}')")


@app.command("lm")
def compress_lm(
    ctx: typer.Context,
    lm: str = typer.Option("smollm2", "--lm", help="The decoder's causal LM (smollm2, hf:<dir>)."),
    out: Path = typer.Option(..., help="A new folder for the compression the budget picks; use it as a "
                                       "pipeline's decoder.lm: compressed:<out> (or load_lm)."),
    methods: str = typer.Option(LM_METHODS, help="Comma list of candidates: none, int8-dynamic, fp16, "
                                                 "bf16."),
    budget_mb: float | None = typer.Option(None, "--budget-mb", help="At most this many MB (10^6 bytes) of "
                                                                     "weights."),
    budget_ms: float | None = typer.Option(None, "--budget-ms", help="At most this many ms per next-token "
                                                                     "step of --batch rows, on this "
                                                                     "machine."),
    budget_params: int | None = typer.Option(None, "--budget-params", help="At most this many parameters in "
                                                                           "the LM."),
    batch: int = typer.Option(1, help="The rows --budget-ms counts a next-token step at (latency is "
                                      "measured at 1, 32 and this)."),
    sentences: int = typer.Option(50, min=2, help="Held-out WordNet sentences sent over the token link "
                                                  "and decoded with each candidate (BLEU-1)."),
    snr: str = typer.Option("5,10,20", help="SNRs (dB, AWGN) the held-out sentences are sent at."),
    keep_float: str | None = typer.Option(None, "--keep-float", help="Layers int8-dynamic leaves in float32 "
                                                                     "(comma list, e.g. "
                                                                     "down_proj,lm_head)."),
    repeats: int = typer.Option(5, min=1, help="Timed runs per latency (the median is reported)."),
    threads: int | None = typer.Option(None, min=1, help="Torch threads while timing (default: torch's)."),
) -> None:
    """Compress a decoder's causal LM to a device budget: measure the front, save the pick."""
    from ragsc.channel.sweep import parse_snr_range
    from ragsc.compress import Budget, LinkData, LMCompressionConfig, lm_front, lm_front_table
    from ragsc.compress.config import parse_lm_methods
    from ragsc.compress.lm import save_compressed_lm

    # every user mistake is refused before the LM is loaded or anything is measured
    check_folder(out, "--out")
    candidates = parse_lm_methods(methods)
    budget = validate(Budget, {"max_mb": budget_mb, "max_ms": budget_ms, "max_params": budget_params,
                               "batch": batch}, "compress lm")
    keep = tuple(k.strip() for k in (keep_float or "").split(",") if k.strip())
    if keep and "int8-dynamic" not in candidates:
        raise ConfigError("--keep-float applies to int8-dynamic, which --methods does not list")
    configs = [validate(LMCompressionConfig, {"lm": lm, "method": m,
                                              "keep_float": keep if m == "int8-dynamic" else ()},
                        "compress lm") for m in candidates]
    snrs = parse_snr_range(snr)
    data = LinkData.default(sentences, snrs=tuple(snrs))
    points = lm_front(configs, data=data, batches=sorted({1, 32, batch}), repeats=repeats, n_threads=threads,
                      progress=True)
    chosen = _pick(points, budget, lm_front_table)
    typer.echo(f"budget: {budget.describe()} (ms: one next-token step at {batch} rows)\n"
               f"picked: {chosen.describe()}")
    save_compressed_lm(out, chosen.compressed, figures=chosen.figures.as_dict(),
                       info={"command": provenance(ctx), "budget": budget.model_dump(), "threads": threads,
                             "front": [{"method": p.name, **p.figures.as_dict()} for p in points]})
    typer.echo(f"wrote {out}; use it as decoder.lm: compressed:{out} (or load_lm('compressed:{out}'))")


def _pick(points, budget, front_table):
    """The point ``budget`` picks, the front printed with it marked; an impossible budget prints the
    front, then raises (:func:`ragsc.compress.choose`)."""
    from ragsc.compress import choose

    try:
        chosen = choose(points, budget)
    except ConfigError:
        typer.echo(front_table(points, budget))
        raise
    typer.echo(front_table(points, budget, chosen))
    return chosen
