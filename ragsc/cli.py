"""The ``ragsc`` command: a thin layer over the public functions.

``ragsc encoders list | train-embedded | eval``, ``ragsc spec validate``, ``ragsc channel sweep``,
``ragsc kb ...``, ``ragsc decoders train``, ``ragsc distill cache | train | search | eval``,
``ragsc federated run | server | client``, ``ragsc eval SPEC``, ``ragsc compress``, ``ragsc demo``. A user
mistake prints ``error: ...`` and exits with status 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # defaults never need a hub; a real one is opt-in
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ragsc.config import validate  # noqa: E402
from ragsc.errors import ConfigError, RagscError  # noqa: E402
from ragsc.report import SCORE_HEADER, score_rows, table  # noqa: E402

app = typer.Typer(help="ragsc: retrieval-augmented multimodal semantic communication.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
encoders_app = typer.Typer(help="Multimodal encoders: list, train the embedded default, evaluate.",
                           no_args_is_help=True)
spec_app = typer.Typer(help="Pipeline specs (pipelines/*.yaml).", no_args_is_help=True)
channel_app = typer.Typer(help="The wireless link: SNR sweeps against theory.", no_args_is_help=True)
app.add_typer(encoders_app, name="encoders")
app.add_typer(spec_app, name="spec")
kb_app = typer.Typer(help="Knowledge bases: create, ingest, search, stats, delete, export.",
                     no_args_is_help=True)
app.add_typer(channel_app, name="channel")
app.add_typer(kb_app, name="kb")
decoders_app = typer.Typer(help="The receiver's trained decoders (text GRU, image generator, VQA head).",
                           no_args_is_help=True)
app.add_typer(decoders_app, name="decoders")
distill_app = typer.Typer(help="Knowledge distillation: teacher stores and compact students.",
                          no_args_is_help=True)
app.add_typer(distill_app, name="distill")
federated_app = typer.Typer(help="Federated split fine-tuning: device adapters, a server-side receiver, "
                                 "FedAvg.", no_args_is_help=True)
app.add_typer(federated_app, name="federated")


def kb_path(name: str) -> Path:
    """A bare NAME lives in RAGSC_HOME/kb/NAME; anything with a '/' is a path. '..' is refused."""
    from ragsc.kb.manifest import resolve_path

    return resolve_path(name)


@kb_app.command("create")
def kb_create(
    name: str,
    encoder: str = typer.Option("embedded", help="Encoder spec (embedded, open_clip:..., hf:...)."),
    scope: str = typer.Option("local", help="local (small, per-user, recent) or global (large, shared)."),
    index: str | None = typer.Option(None, help="FAISS factory string; default: chosen by size "
                                                   "(Flat/HNSW/IVF-PQ)."),
) -> None:
    """Create an empty knowledge base."""
    from ragsc.encoders import load_encoder
    from ragsc.kb import KnowledgeBase
    from ragsc.kb.manifest import check_new_location

    path = kb_path(name)
    if scope not in ("local", "global"):
        raise typer.BadParameter("scope must be 'local' or 'global'")
    check_new_location(path)  # before the encoder is loaded
    kb = KnowledgeBase.create(path, load_encoder(encoder), scope=scope, index=index)
    typer.echo(f"created {scope} knowledge base {path} (encoder {encoder}, dim {kb.dim}, "
               f"index {index or 'auto'})")


@kb_app.command("ingest")
def kb_ingest(
    name: str,
    source: str,
    format: str | None = typer.Option(None, "--format", help="folder | coco | vqa | jsonl | text | "
                                                                "paragraphs | easy-vqa (default: detected)."),
    resume: bool = typer.Option(False, help="Continue after the last committed checkpoint of this source."),
    distributed: str | None = typer.Option(None, help="'ray' to run shards as Ray tasks (extra: ray)."),
    images: str | None = typer.Option(None, help="COCO: folder of the images (default: next to the "
                                                    "JSON)."),
    annotations: str | None = typer.Option(None, help="VQA: annotations JSON (default: found by name)."),
    batch_size: int = typer.Option(64, min=1),
    checkpoint_every: int = typer.Option(2048, min=1, help="Commit every N new items."),
    limit: int | None = typer.Option(None, min=1, help="Ingest at most N records."),
    wait: float = typer.Option(0.0, "--wait", min=0.0, metavar="SECONDS",
                               help="Wait up to SECONDS for another writer of the KB to finish (default: "
                                    "fail at once); said on stderr, before the encoder is loaded."),
) -> None:
    """Ingest a source: encode, deduplicate, commit (batched, resumable)."""
    from ragsc.kb import KnowledgeBase, ingest

    kb = KnowledgeBase.open(kb_path(name))
    r = ingest(kb, source, fmt=format, resume=resume, batch_size=batch_size,
               checkpoint_every=checkpoint_every, images=images, annotations=annotations, limit=limit,
               distributed=distributed, wait_s=wait, on_wait=lambda message: typer.echo(message, err=True))
    rows = [["records seen", r.seen], ["added", r.added], ["duplicates", r.duplicates],
            *[[f"skipped: {k}", v] for k, v in sorted(r.skipped.items())],
            *[[f"note: {k}", v] for k, v in sorted(r.notes.items())],
            ["resumed from record", r.resumed_from], ["seconds", f"{r.seconds:.1f}"],
            ["records/s", f"{r.items_per_s:.1f}"]]
    typer.echo(table([[a, str(b)] for a, b in rows], ["ingest", str(kb_path(name))]))


@kb_app.command("search")
def kb_search(
    name: str,
    text: str | None = typer.Argument(None, help="A text query."),
    image: Path | None = typer.Option(None, help="An image query instead of text."),
    k: int = typer.Option(5, "-k", min=1, help="Hits to show."),
) -> None:
    """Search a knowledge base by text or image."""
    from ragsc.encoders import load_encoder
    from ragsc.kb import KnowledgeBase

    if (text is None) == (image is None):
        raise typer.BadParameter("give either a text query or --image PATH")
    from ragsc.kb.manifest import read_manifest

    enc = load_encoder(read_manifest(kb_path(name))["encoder"]["spec"])
    kb = KnowledgeBase.open(kb_path(name), encoder=enc)
    q = enc.encode_texts([text]) if text is not None else enc.encode_images([image])
    hits = kb.search(q, k)[0]
    rows = [[str(h.id), f"{h.score:.3f}", h.item.modality, (h.item.text or "")[:60], h.item.source_uri or ""]
            for h in hits]
    typer.echo(table(rows, ["id", "score", "modality", "text", "source"]))


@kb_app.command("stats")
def kb_stats(name: str, verify: bool = typer.Option(False, help="Also check file checksums.")) -> None:
    """Counts, index type, size on disk, bytes per item (after SQLite's integrity check of the metadata)."""
    from ragsc.kb import KnowledgeBase

    kb = KnowledgeBase.open(kb_path(name))
    if verify:
        kb.verify()
    typer.echo(json.dumps(kb.stats(), indent=2))


@kb_app.command("delete")
def kb_delete(name: str, ids: list[int]) -> None:
    """Delete items by id (one commit)."""
    from ragsc.kb import KnowledgeBase

    n = KnowledgeBase.open(kb_path(name)).delete(ids)
    typer.echo(f"deleted {n} of {len(ids)} ids")


@kb_app.command("export")
def kb_export(name: str, out: Path = typer.Option(..., help="JSONL file to write (metadata, one item per "
                                                              "line).")) -> None:
    """Export metadata as JSONL (and vectors as OUT.npy when the index stores them exactly)."""
    from ragsc.kb import KnowledgeBase

    kb = KnowledgeBase.open(kb_path(name))
    n = kb.export(out)
    typer.echo(f"exported {n} items to {out}")


@encoders_app.command("list")
def encoders_list() -> None:
    """Show the encoder backends and the shipped embedded heads' measured scores."""
    from safetensors import safe_open

    from ragsc._assets import asset_dir
    from ragsc.encoders import BACKENDS

    typer.echo(table([[k, v] for k, v in BACKENDS.items()], ["backend", "spec / what"]))
    heads = asset_dir("encoders") / "embedded" / "heads.safetensors"
    if heads.is_file():
        with safe_open(str(heads), framework="pt") as f:
            metrics = json.loads((f.metadata() or {}).get("metrics", "{}"))
        if "scores" in metrics:
            typer.echo(f"\nembedded heads: {heads}\n" + table(score_rows(metrics["scores"]), SCORE_HEADER))


@encoders_app.command("train-embedded")
def encoders_train_embedded(
    out: Path | None = typer.Option(None, help="Where to write the heads (default: the shipped "
                                               "encoders/embedded/heads.safetensors)."),
    epochs: int = typer.Option(40, min=1, help="Training epochs over easy-VQA train."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Train the embedded encoder's alignment heads (frozen towers; easy-VQA + ImageNet class names)."""
    from ragsc._assets import asset_dir
    from ragsc.encoders.train_embedded import TrainConfig, train_embedded

    target = out or asset_dir("encoders") / "embedded" / "heads.safetensors"
    scores = train_embedded(target, TrainConfig(epochs=epochs, seed=seed))
    typer.echo(f"wrote {target}\n" + table(score_rows(scores), SCORE_HEADER))


@encoders_app.command("eval")
def encoders_eval(
    spec: str = typer.Option("embedded", help="Encoder spec."),
    limit: int | None = typer.Option(None, min=1, help="Use only the first N easy-VQA test images."),
) -> None:
    """Caption retrieval R@1 (both ways) on easy-VQA test and the captioned sample photos."""
    from ragsc.encoders import load_encoder
    from ragsc.encoders.evaluate import standard_suite

    enc = load_encoder(spec)
    typer.echo(f"{enc} fingerprint={enc.fingerprint}")
    typer.echo(table(score_rows(standard_suite(enc, limit)), SCORE_HEADER))


@spec_app.command("validate")
def spec_validate(path: Path) -> None:
    """Validate a YAML pipeline spec and print it with defaults filled in."""
    from ragsc.config import load_pipeline_spec

    typer.echo(json.dumps(load_pipeline_spec(path).resolved(), indent=2))


@channel_app.command("sweep")
def channel_sweep(
    channel: str = typer.Option("awgn,rayleigh", help="Comma list of channels: awgn, rayleigh, rician."),
    snr: str = typer.Option("-5:20:1", help="SNR range in dB (Es/N0): start:stop:step or a comma list."),
    out: Path = typer.Option(Path("channel_sweep"), help="Output folder for the CSV and PNG."),
    codewords: int = typer.Option(200, min=10, help="LDPC codewords per SNR."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """BER/BLER of the digital paths and MSE/cosine of the analog path vs SNR, with closed forms."""
    from ragsc.channel.sweep import SweepSettings, parse_channels, parse_snr_range, plot, run_sweep, write_csv

    channels, snrs = parse_channels(channel), parse_snr_range(snr)  # validate before any work
    rows = run_sweep(channels, snrs, SweepSettings(codewords=codewords, seed=seed))
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "channel_sweep.csv")
    plot(rows, out / "channel_sweep.png")
    typer.echo(f"wrote {out / 'channel_sweep.csv'} and {out / 'channel_sweep.png'} ({len(rows)} rows)")


@decoders_app.command("train")
def decoders_train(
    out: Path | None = typer.Option(None, help="Where to write them (default: the shipped "
                                               "encoders/embedded/decoders.safetensors)."),
    encoder: str = typer.Option("embedded", help="The encoder the decoders read."),
    text_steps: int = typer.Option(2000, min=1, help="Training steps of the text GRU."),
    image_steps: int = typer.Option(1200, min=1, help="Training steps of the image generator."),
    vqa_steps: int = typer.Option(2500, min=1, help="Training steps of the VQA answer head."),
    seed: int = typer.Option(0, help="Random seed."),
    only: str | None = typer.Option(None, help="Comma list of text,image,vqa: retrain only these (the "
                                               "others and their PCA basis are kept from --out, or from "
                                               "the shipped decoders when --out does not exist yet)."),
) -> None:
    """Train the text, image and VQA decoders behind an encoder (about 13 minutes on 2 CPU cores)."""
    from ragsc.decoders.bundle import default_path
    from ragsc.decoders.train import TrainDecodersConfig, train_decoders

    cfg = validate(TrainDecodersConfig, {"encoder": encoder, "text_steps": text_steps,
                                         "image_steps": image_steps, "vqa_steps": vqa_steps,
                                         "seed": seed}, "decoders train")
    target = out or default_path()
    parts = tuple(p.strip() for p in only.split(",") if p.strip()) if only else ("text", "image", "vqa")
    info = train_decoders(target, cfg, parts=parts, base=target if target.exists() else default_path())
    typer.echo(f"wrote {target}\n" + json.dumps({k: v for k, v in info.items() if k != "config"}, indent=2))


@distill_app.command("cache")
def distill_cache(
    data: str = typer.Option(..., help="A KB source (folder, jsonl, text, paragraphs, coco, vqa, easy-vqa "
                                       "train|test), fashion-mnist:train|test, or corpus."),
    out: Path = typer.Option(..., help="The store's folder (resumed when it holds this teacher and recipe)."),
    teacher: str = typer.Option("embedded", help="The teacher's encoder spec."),
    fmt: str | None = typer.Option(None, "--format", help="KB source format (default: detected)."),
    n: int | None = typer.Option(None, min=1, help="Only the first N items."),
    views: int = typer.Option(0, min=0, help="Augmented views per image."),
    tokens: bool = typer.Option(False, help="Also store the teacher's patch tokens (images)."),
    label_field: str | None = typer.Option(None, help="Record field that labels items (easy-vqa: shape, "
                                                      "color)."),
    seed: int = typer.Option(0, help="Seed of the augmented views."),
    shard_size: int = typer.Option(512, min=1, help="Items per safetensors shard."),
) -> None:
    """Compute a teacher's outputs over a dataset once (resumable); every student run reads them."""
    from ragsc.distill.store import DataRecipe, build_store
    from ragsc.encoders import load_encoder

    recipe = validate(DataRecipe, {"source": data, "format": fmt, "n": n, "views": views, "tokens": tokens,
                                   "label_field": label_field, "seed": seed}, "distill cache")
    store = build_store(out, load_encoder(teacher), recipe, shard_size=shard_size, progress=True)
    typer.echo(f"{out}: {len(store)} items of {store.teacher['spec']} ({store.teacher['fingerprint']})")


@distill_app.command("train")
def distill_train(
    store: Path = typer.Option(..., help="A teacher store (`ragsc distill cache`)."),
    out: Path = typer.Option(..., help="The student's folder (a tower is added to a student of the same "
                                       "teacher); load it with load_encoder('student:<out>')."),
    modality: str = typer.Option("image", help="image or text: the tower to train."),
    objective: str = typer.Option("kd", help="kd, ib (information bottleneck) or scratch (no teacher)."),
    image_size: int = typer.Option(64, min=16, help="Image student: input size."),
    widths: str = typer.Option("24,48,96,192", help="Image student: channels per stage."),
    width: int = typer.Option(128, min=8, help="Text student: model width."),
    layers: int = typer.Option(2, min=1, help="Text student: transformer layers."),
    code_dim: int = typer.Option(0, min=0, help="> 0: a stochastic code of this size (needed by ib)."),
    beta: float = typer.Option(1e-3, min=0.0, help="ib: weight of the rate term."),
    epochs: int = typer.Option(10, min=1),
    batch_size: int = typer.Option(128, min=1),
    lr: float = typer.Option(2e-3, min=0.0),
    label_fraction: float = typer.Option(1.0, help="Share of the labels used (0 < f <= 1)."),
    seed: int = typer.Option(0),
) -> None:
    """Stage 1: train a student tower on a teacher store and save it as a loadable encoder."""
    from ragsc.distill.store import TeacherStore
    from ragsc.distill.students import ImageStudentConfig, TextStudentConfig
    from ragsc.distill.train import distill_to_folder

    s = TeacherStore(store)
    classes = len(s.labels) if objective == "ib" else 0
    if modality == "image":
        cfg = validate(ImageStudentConfig, {"image_size": image_size, "out_dim": s.teacher["dim"],
                                            "widths": [int(w) for w in widths.split(",") if w.strip()],
                                            "code_dim": code_dim, "num_classes": classes}, "distill train")
    elif modality == "text":
        cfg = validate(TextStudentConfig, {"width": width, "layers": layers, "out_dim": s.teacher["dim"],
                                           "code_dim": code_dim, "num_classes": classes}, "distill train")
    else:
        raise ConfigError(f"--modality must be image or text, got {modality!r}")
    tower = (f"--image-size {image_size} --widths {widths}" if modality == "image"
             else f"--width {width} --layers {layers}")
    command = (f"ragsc distill train --store {store} --out {out} --modality {modality} "
               f"--objective {objective} {tower} --code-dim {code_dim} --beta {beta} --epochs {epochs} "
               f"--batch-size {batch_size} --lr {lr} --label-fraction {label_fraction} --seed {seed}")
    _, figures = distill_to_folder(s, out, cfg, info={"command": command}, objective=objective, beta=beta,
                                   epochs=epochs, batch_size=batch_size, lr=lr,
                                   label_fraction=label_fraction, seed=seed, progress=True)
    typer.echo(f"wrote {out}\n" + json.dumps(figures, indent=2))


def _numbers(text: str, option: str) -> list[float]:
    """A number or a comma list of numbers, e.g. ``--lam 0,0.1,1``."""
    try:
        return [float(p.strip()) for p in text.split(",")]
    except ValueError:
        raise ConfigError(f"{option} must be a number or a comma list of numbers, got {text!r}") from None


@distill_app.command("search")
def distill_search(
    store: Path = typer.Option(..., help="A teacher store of images (`ragsc distill cache`)."),
    out: Path = typer.Option(..., help="The student's folder (one --lam) or the front's folder (a student "
                                       "per lambda in OUT/lam-<lam>, front.png/json/csv); checkpoints in "
                                       "OUT/checkpoint, resumed by a rerun with the same settings."),
    lam: str = typer.Option("0.1", help="Complexity weight, or a comma list that traces the lambda front."),
    complexity: str = typer.Option("params", help="params or macs: what the penalty and --budget count."),
    budget: float | None = typer.Option(None, help="The most parameters (or MACs) a derived student may "
                                                   "have; a budget no architecture meets fails at once."),
    epochs: int = typer.Option(10, min=1, help="Search epochs."),
    retrain_epochs: int = typer.Option(10, min=1, help="Stage-1 KD retraining epochs of the derived net."),
    image_size: int = typer.Option(32, help="Input size of the student (>= 16)."),
    channels: int = typer.Option(8, help="Channels of the first cells (doubled by each reduction)."),
    layers: int = typer.Option(5, help="Cells."),
    nodes: int = typer.Option(4, help="Intermediate nodes per cell."),
    reductions: int = typer.Option(2, help="Reduction cells."),
    ops: str | None = typer.Option(None, help="Comma list of candidate ops (default: all DARTS primitives)."),
    max_skip: int = typer.Option(2, min=0, help="At most this many skip connections in the normal cell."),
    batch_size: int = typer.Option(64, min=1),
    lr_w: float = typer.Option(0.025, min=0.0, help="The weights' SGD learning rate (also retraining's)."),
    lr_alpha: float = typer.Option(3e-4, min=0.0, help="The architecture weights' Adam learning rate."),
    val_fraction: float = typer.Option(0.2, help="Seeded share of the store that scores the students."),
    seed: int = typer.Option(0),
) -> None:
    """KDL-DARTS: search, derive, retrain (KD) and save a compact image student; prints its figures."""
    from ragsc.distill.darts import SkipGuard
    from ragsc.distill.runs import search_student
    from ragsc.distill.store import TeacherStore

    lams = _numbers(lam, "--lam")
    op_names = tuple(o.strip() for o in ops.split(",") if o.strip()) if ops is not None else None
    s = TeacherStore(store)
    command = (f"ragsc distill search --store {store} --out {out} --lam {lam} --complexity {complexity}"
               + (f" --budget {budget:g}" if budget is not None else "")
               + f" --epochs {epochs} --retrain-epochs {retrain_epochs} --image-size {image_size} "
               f"--channels {channels} --layers {layers} --nodes {nodes} --reductions {reductions}"
               + (f" --ops {ops}" if ops is not None else "")
               + f" --max-skip {max_skip} --batch-size {batch_size} --lr-w {lr_w} --lr-alpha {lr_alpha} "
               f"--val-fraction {val_fraction} --seed {seed}")
    rows = search_student(s, out, lams=lams, complexity=complexity, budget=budget, epochs=epochs,
                          retrain_epochs=retrain_epochs, image_size=image_size, channels=channels,
                          layers=layers, nodes=nodes, reductions=reductions, ops=op_names,
                          skip_guard=SkipGuard(max_skip=max_skip), batch_size=batch_size, lr_w=lr_w,
                          lr_alpha=lr_alpha, val_fraction=val_fraction, seed=seed, info={"command": command},
                          progress=True)
    typer.echo(table([[f"{r['lam']:g}", f"{r['params']:,}", f"{r['macs']:,}", f"{r['val_cosine']:.4f}",
                       f"{r['val_kd']:.4f}", f"{r['search_seconds']:.1f}", r["folder"]] for r in rows],
                     ["lambda", "parameters", "MACs", "val cosine", "val KD loss", "search s", "student"]))
    if len(rows) > 1:
        typer.echo(f"wrote {out / 'front.png'}, {out / 'front.json'} and {out / 'front.csv'}")
    typer.echo(f"load with load_encoder('student:{rows[0]['folder']}')" if len(rows) == 1
               else f"load each with load_encoder('student:{out}/lam-<lambda>')")


@distill_app.command("eval")
def distill_eval(
    student: Path = typer.Option(..., help="A student folder (what student:<dir> loads)."),
    store: Path = typer.Option(..., help="A held-out teacher store of the student's teacher."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON instead of a table."),
    teacher_params: bool = typer.Option(True, help="Load the teacher (by the store's spec) to count its "
                                                   "parameters; skipped when it cannot be loaded."),
) -> None:
    """Score a student against its teacher on a held-out store: cosine, r@1, caption r@1, parameters."""
    from ragsc.distill.runs import check_serves, score_student
    from ragsc.distill.store import TeacherStore
    from ragsc.errors import RagscError

    s = TeacherStore(store)
    check_serves(student, s)  # a mismatched teacher fails before anything is loaded
    teacher = None
    if teacher_params:
        from ragsc.encoders import load_encoder

        try:
            teacher = load_encoder(s.teacher["spec"])
        except RagscError:
            teacher = None  # a spec this machine cannot load: the teacher's size stays unknown
        if teacher is not None and teacher.fingerprint != s.teacher["fingerprint"]:
            teacher = None  # the spec now names another model than the one that computed the store
    figures = score_student(student, s, teacher)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        return
    rows = []
    for modality, r in figures["towers"].items():
        known = "teacher_params" in r
        rows.append([modality, str(r["items"]), f"{r['cosine']:.4f}", f"{r['r@1']:.3f}",
                     f"{r['caption_r@1']:.3f}" if "caption_r@1" in r else "-", f"{r['student_params']:,}",
                     f"{r['teacher_params']:,}" if known else "unknown",
                     f"{r['param_ratio']:.4f}" if known and r["param_ratio"] is not None else "-"])
    typer.echo(f"{student} vs {s.teacher['spec']} ({s.teacher['fingerprint']}) on {store}\n"
               + table(rows, ["tower", "items", "cosine", "r@1", "caption r@1", "student params",
                              "teacher params", "student/teacher"]))


def _federated_spec(spec: Path, engine: str | None = None, rounds: int | None = None):
    from ragsc.federated.config import load_spec, spec_from

    s = load_spec(spec)
    if engine is None and rounds is None:
        return s
    d = s.model_dump(mode="json")
    d["engine"] = engine or d["engine"]
    d["train"]["rounds"] = rounds or d["train"]["rounds"]
    return spec_from(d)


def _federated_table(result) -> str:
    rows = [["0", "-", "-", "-", f"{result.initial_accuracy:.3f}", "-", "-", "-", "-"]]
    for r in result.rounds:
        rows.append([str(r.round), str(len(r.participants)), str(len(r.completed)),
                     ",".join(str(c) for c in r.dropped) or "-", f"{r.accuracy:.3f}", f"{r.train_loss:.3f}",
                     f"{r.uplink_bytes / 1e3:,.1f}", f"{r.downlink_bytes / 1e3:,.1f}",
                     f"{r.uplink_ratio:.4f}"])
    return table(rows, ["round", "clients", "finished", "dropped", "accuracy", "train loss", "uplink kB",
                        "downlink kB", "uplink / full FedAvg"])


@federated_app.command("run")
def federated_run(
    spec: Path = typer.Argument(..., help="A federated spec, YAML or JSON (pipelines/federated/*.yaml)."),
    engine: str | None = typer.Option(None, help="inprocess, flower-sim (Ray) or flower-grpc (localhost "
                                                 "processes); default: the spec's."),
    rounds: int | None = typer.Option(None, min=1, help="Rounds (default: the spec's train.rounds)."),
    out: Path | None = typer.Option(None, help="Folder for the adapters (adapters.json + .safetensors, "
                                               "receiver.safetensors), history.json / .csv, accuracy.png."),
    centralised: bool = typer.Option(False, help="Also fine-tune the same model on all the data in one "
                                                 "place and print the accuracy ratio."),
) -> None:
    """Federated split fine-tuning: per round, accuracy over the channel and the bytes up and down."""
    from ragsc.federated.engine import centralised_spec, plot_runs, run_federated

    s = _federated_spec(spec, engine, rounds)
    result = run_federated(s, progress=True)
    c = s.clients
    typer.echo(f"{s.data.dataset}: {c.n} clients (Dirichlet alpha {c.alpha:g}, {c.fraction:.0%} per round, "
               f"dropout {c.dropout:g}), {s.channel.channel} at {s.channel.snr_db:g} dB, "
               f"{s.channel.k_symbols} symbols per image, engine {result.engine}; accuracy on the "
               + (f"{s.data.n_val} validation items held back from the clients" if s.data.evaluate_on ==
                  "validation" else f"{s.data.n_test or 'all'} test items"))
    typer.echo(_federated_table(result))
    summary = result.summary()
    skipped = [r for r in result.rounds if r.skipped]
    if skipped:
        typer.echo(f"skipped rounds: {', '.join(str(r.round) for r in skipped)} ({skipped[0].skipped})")
    typer.echo(f"device parameters trained {summary['trainable_params']:,} of {summary['device_params']:,}; "
               f"uplink per round {summary['uplink_bytes_per_round'] / 1e3:,.1f} kB = "
               f"{summary['uplink_ratio']:.4f} of full-model FedAvg's")
    ref = None
    if centralised:
        ref = run_federated(centralised_spec(s), progress=True)
        typer.echo(f"centralised fine-tuning: accuracy {ref.accuracy:.3f}; federated / centralised "
                   f"{result.accuracy / ref.accuracy:.3f}")
    if out is not None:
        command = (f"ragsc federated run {spec}" + (f" --engine {engine}" if engine else "")
                   + (f" --rounds {rounds}" if rounds else "") + f" --out {out}")
        result.save(out, info={"command": command})
        png = plot_runs({f"federated ({result.engine})": result}, out / "accuracy.png",
                        title=f"{s.data.dataset}, {s.clients.n} clients",
                        reference=("centralised", ref) if ref is not None else None)
        typer.echo(f"wrote {out} (adapters, receiver, history) and {png}")


@federated_app.command("server")
def federated_server(
    spec: Path = typer.Argument(..., help="A federated spec, YAML or JSON."),
    address: str = typer.Option("0.0.0.0:8080", help="host:port the Flower server listens on."),
    out: Path | None = typer.Option(None, help="Folder for the adapters and the history."),
) -> None:
    """A Flower server for SPEC; start its clients with `ragsc federated client` (any machine)."""
    from ragsc.federated.flower import serve

    s = _federated_spec(spec, "flower-grpc")
    result = serve(s, address, progress=True)
    typer.echo(_federated_table(result))
    if out is not None:
        result.save(out)
        typer.echo(f"wrote {out}")


@federated_app.command("client")
def federated_client(
    spec: Path = typer.Argument(..., help="The server's federated spec (the server refuses another)."),
    partition: int = typer.Option(..., min=0, help="This client's share of the data: 0 .. clients.n - 1."),
    address: str = typer.Option("127.0.0.1:8080", help="host:port of the Flower server."),
) -> None:
    """A Flower client of SPEC: trains its adapters on its own share of the data, sends symbols only."""
    from ragsc.federated.flower import start_client

    start_client(_federated_spec(spec, "flower-grpc"), partition, address)


DEFAULT_METHODS = {"text": "none,int8-dynamic,int8-static,fp16,bf16",
                   "image": "none,int8-dynamic,int8-static,fp16,bf16,prune,prune+int8-static"}


@app.command("compress")
def compress_encoder(
    encoder: str = typer.Option("embedded", help="The base encoder's spec (embedded, student:<dir>)."),
    out: Path = typer.Option(..., help="A new folder for the compression the budget picks; load it with "
                                       "load_encoder('compressed:<out>'), or load_lm for --lm."),
    lm: str | None = typer.Option(None, "--lm", help="Compress a decoder's causal LM instead of an encoder "
                                                     "(smollm2, hf:<dir>): methods none, int8-dynamic, fp16, "
                                                     "bf16; scored by BLEU-1 over the token link."),
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
    sentences: int | None = typer.Option(None, min=2, help="Held-out WordNet sentences: R@1 against float "
                                         "and as many definition -> example pairs (gloss R@1) for a text "
                                         "tower (default 500); sent over the token link for --lm (default "
                                         "50)."),
    snr: str = typer.Option("5,10,20", help="--lm: SNRs (dB, AWGN) the held-out sentences are sent at."),
    keep_float: str | None = typer.Option(None, "--keep-float", help="--lm: layers int8-dynamic leaves in "
                                                                     "float32 (comma list, e.g. "
                                                                     "down_proj,lm_head)."),
    images: int = typer.Option(200, min=2, help="easy-VQA test images that score a tower (caption R@1)."),
    repeats: int = typer.Option(5, min=1, help="Timed runs per latency (the median is reported)."),
    threads: int | None = typer.Option(None, min=1, help="Torch threads while timing (default: torch's)."),
) -> None:
    """Compress a tower (or a decoder's LM) to a device budget: measure the size / latency / score front,
    save the pick."""
    from ragsc.compress import Budget, CompressionConfig, EvalData, front, front_table, parse_methods
    from ragsc.compress.saved import save_compressed
    from ragsc.encoders import load_encoder

    # every user mistake is refused before the encoder is loaded or anything is measured
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not empty; give a new folder")
    if lm is not None:
        return _compress_lm(lm, out, methods, budget_mb, budget_ms, budget_params, batch, sentences, snr,
                            repeats, threads, keep_float)
    if keep_float is not None:
        raise ConfigError("--keep-float applies to an LM's int8-dynamic (--lm SPEC)")
    if tower not in DEFAULT_METHODS:
        raise ConfigError(f"--tower must be text or image, got {tower!r}")
    candidates = parse_methods(methods if methods is not None else DEFAULT_METHODS[tower])
    budget = validate(Budget, {"max_mb": budget_mb, "max_ms": budget_ms, "max_params": budget_params,
                               "batch": batch}, "compress")
    finetune = {"epochs": finetune_epochs, "images": finetune_images,
                "store": str(store) if store is not None else None}
    configs = [validate(CompressionConfig, {"encoder": encoder, "tower": tower, "methods": m,
                                            "prune_keep": prune_keep, "prune_by": prune_by,
                                            "finetune": finetune}, "compress") for m in candidates]
    enc = load_encoder(encoder)
    configs = [c.model_copy(update={"encoder": enc.spec}) for c in configs]
    points = front(enc, configs, data=EvalData.default(sentences or 500, images),
                   batches=sorted({1, 64, batch}), repeats=repeats, n_threads=threads, progress=True)
    chosen = _pick(points, budget, front_table)
    typer.echo(f"budget: {budget.describe()}\npicked: {chosen.describe()}")
    command = " ".join(["ragsc", *sys.argv[1:]]) if sys.argv and "ragsc" in sys.argv[0] else "ragsc compress"
    front_rows = [{"methods": p.name, **p.figures.as_dict()} for p in points]
    save_compressed(out, chosen.compressed, figures=chosen.figures.as_dict(),
                    info={"command": command, "budget": budget.model_dump(), "front": front_rows,
                          "threads": threads})
    typer.echo(f"wrote {out}; load it with load_encoder('compressed:{out}')")


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


def _compress_lm(spec: str, out: Path, methods: str | None, budget_mb: float | None, budget_ms: float | None,
                 budget_params: int | None, batch: int, sentences: int | None, snr: str, repeats: int,
                 threads: int | None, keep_float: str | None) -> None:
    """``ragsc compress --lm SPEC``: the LM front, the budget's pick saved (see :mod:`ragsc.compress.lm`)."""
    from ragsc.channel.sweep import parse_snr_range
    from ragsc.compress import Budget, LinkData, LMCompressionConfig, lm_front, lm_front_table
    from ragsc.compress.config import parse_lm_methods
    from ragsc.compress.lm import save_compressed_lm

    candidates = parse_lm_methods(methods if methods is not None else "none,int8-dynamic,fp16,bf16")
    budget = validate(Budget, {"max_mb": budget_mb, "max_ms": budget_ms, "max_params": budget_params,
                               "batch": batch}, "compress")
    keep = tuple(k.strip() for k in (keep_float or "").split(",") if k.strip())
    if keep and "int8-dynamic" not in candidates:
        raise ConfigError("--keep-float applies to int8-dynamic, which --methods does not list")
    configs = [validate(LMCompressionConfig, {"lm": spec, "method": m,
                                              "keep_float": keep if m == "int8-dynamic" else ()}, "compress")
               for m in candidates]
    snrs = parse_snr_range(snr)
    data = LinkData.default(sentences or 50, snrs=tuple(snrs))
    points = lm_front(configs, data=data, batches=sorted({1, 32, batch}), repeats=repeats, n_threads=threads,
                      progress=True)
    chosen = _pick(points, budget, lm_front_table)
    typer.echo(f"budget: {budget.describe()} (ms: one next-token step at {batch} rows)\n"
               f"picked: {chosen.describe()}")
    command = " ".join(["ragsc", *sys.argv[1:]]) if sys.argv and "ragsc" in sys.argv[0] else "ragsc compress"
    save_compressed_lm(out, chosen.compressed, figures=chosen.figures.as_dict(),
                       info={"command": command, "budget": budget.model_dump(), "threads": threads,
                             "front": [{"method": p.name, **p.figures.as_dict()} for p in points]})
    typer.echo(f"wrote {out}; use it as decoder.lm: compressed:{out} (or load_lm('compressed:{out}'))")


@app.command("eval")
def eval_pipeline(
    spec: Path = typer.Argument(..., help="Pipeline spec (pipelines/<task>.yaml)."),
    snr: str = typer.Option("-5:20:5", help="SNR range in dB (Es/N0): start:stop:step or a comma list."),
    channel: str = typer.Option("awgn,rayleigh", help="Comma list of channels: awgn, rayleigh, rician."),
    out: Path = typer.Option(Path("eval"), help="Output folder for eval.csv and the PNG plots."),
    n: int = typer.Option(50, min=1, help="Items per task kind (sentences, images)."),
    methods: str = typer.Option("semantic+rag,semantic,semantic-embedding,retrieval,digital,digital-lm,ideal,"
                                "noiseless",
                                help="Comma list of methods to compare."),
    seed: int = typer.Option(0, help="Random seed (items, noise)."),
    k_symbols: int | None = typer.Option(
        None, "--k-symbols", min=1,
        help="Complex symbols per image (and per sentence sent as an embedding), for every method "
             "(default: the spec's channel.k_symbols); sentences on the token link cost their tokens."),
    subset: str = typer.Option("all", help="Sentences and images to send: all (half held by the KBs, half "
                                           "novel), held (KB-held only) or novel (in no KB, no training)."),
) -> None:
    """Sweep a pipeline over SNRs and channels against the baselines at equal channel uses: CSV + PNG."""
    from ragsc.channel.sweep import parse_channels, parse_snr_range
    from ragsc.config import load_pipeline_spec
    from ragsc.eval import METHODS, SUBSETS, run_eval, save, summary_table
    from ragsc.pipelines import Pipeline

    channels, snrs = parse_channels(channel), parse_snr_range(snr)  # validate before any work
    chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
    if not chosen or any(m not in METHODS for m in chosen):
        raise ConfigError(f"--methods must be a comma list of {', '.join(METHODS)}, got {methods!r}")
    if subset not in SUBSETS:
        raise ConfigError(f"--subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    config = load_pipeline_spec(spec).model_dump()
    if k_symbols is not None:
        config["channel"]["k_symbols"] = k_symbols
    pipe = Pipeline.from_config(config)
    rows = run_eval(pipe, channels, snrs, n=n, seed=seed, methods=chosen, subset=subset)
    csv_path, pngs = save(rows, out)
    typer.echo(summary_table(rows))
    typer.echo(f"wrote {csv_path} and {', '.join(str(p) for p in pngs)} ({len(rows)} rows)")


@app.command()
def demo(
    limit: int = typer.Option(240, min=1, help="easy-VQA test images for the encoder check."),
    n: int = typer.Option(12, min=1, help="Sentences and images in the sweep."),
    lm: bool = typer.Option(True, help="Also decode the example sentences the embedding way "
                            "(the semantic-embedding baseline)."),
) -> None:
    """The main job on the embedded default: KBs, the multitask pipeline, examples and a baseline sweep."""
    from ragsc.demo import run_demo

    run_demo(limit=limit, echo=typer.echo, n=n, lm=lm)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes become one ``error:`` line and exit status 2."""
    try:
        app(args=argv, standalone_mode=False)
    except RagscError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (typer.Exit, typer.Abort) as exc:
        sys.exit(getattr(exc, "exit_code", 1))
    except Exception as exc:  # click usage errors arrive here in standalone_mode=False
        import click

        # recent typer (0.29 here) vendors click as typer._click: its usage errors derive from
        # TyperException, not click's
        # older typer (0.20, which Flower's extra pins) has no typer.exceptions: click's classes then
        usage = (click.ClickException,
                 getattr(getattr(typer, "exceptions", None), "TyperException", click.ClickException))
        if isinstance(exc, usage) and hasattr(exc, "show"):
            exc.show()
            sys.exit(getattr(exc, "exit_code", 2))
        raise


if __name__ == "__main__":
    main()
