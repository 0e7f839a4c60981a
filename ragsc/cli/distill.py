"""``ragsc distill``: teacher stores and compact students (:mod:`ragsc.distill`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ragsc.cli._common import provenance
from ragsc.config import validate
from ragsc.errors import ConfigError
from ragsc.report import table

app = typer.Typer(help="Knowledge distillation: teacher stores and compact students.",
                  no_args_is_help=True)


@app.command("cache")
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

    _check_store_out(out)
    recipe = validate(DataRecipe, {"source": data, "format": fmt, "n": n, "views": views, "tokens": tokens,
                                   "label_field": label_field, "seed": seed}, "distill cache")
    store = build_store(out, load_encoder(teacher), recipe, shard_size=shard_size, progress=True)
    typer.echo(f"{out}: {len(store)} items of {store.teacher['spec']} ({store.teacher['fingerprint']})")


def _check_store_out(out: Path) -> None:
    """``distill cache --out``: new, empty, or a store to resume (whose teacher and recipe
    :func:`~ragsc.distill.store.build_store` checks), or a run's shards killed before its manifest."""
    from ragsc.distill.store import MANIFEST
    from ragsc.targets import check_folder, only_files

    partial = only_files("shard-*.safetensors", "shard-*.safetensors.tmp", "manifest.tmp",
                         what="a killed run's shards")

    def resume(folder: Path) -> str | None:
        if (folder / MANIFEST).is_file() or partial(folder) is None:
            return None
        return f"holds other files, not a teacher store (no {MANIFEST}); name a new or empty folder"

    check_folder(out, "--out", reuse=resume)


@app.command("train")
def distill_train(
    ctx: typer.Context,
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
    from ragsc.distill.student_nets import ImageStudentConfig, TextStudentConfig
    from ragsc.distill.train import distill_to_folder
    from ragsc.saved import check_target

    check_target(out, overwrite=True, kind="student", option="--out")  # new, empty, or a student to add to
    s = TeacherStore(store)
    classes = len(s.labels) if objective == "ib" else 0
    if modality == "image":
        cfg = validate(ImageStudentConfig, {"image_size": image_size, "out_dim": s.teacher["dim"],
                                            "widths": _integers(widths, "--widths"),
                                            "code_dim": code_dim, "num_classes": classes}, "distill train")
    elif modality == "text":
        cfg = validate(TextStudentConfig, {"width": width, "layers": layers, "out_dim": s.teacher["dim"],
                                           "code_dim": code_dim, "num_classes": classes}, "distill train")
    else:
        raise ConfigError(f"--modality must be image or text, got {modality!r}")
    _, figures = distill_to_folder(s, out, cfg, info={"command": provenance(ctx)}, objective=objective,
                                   beta=beta, epochs=epochs, batch_size=batch_size, lr=lr,
                                   label_fraction=label_fraction, seed=seed, progress=True)
    typer.echo(f"wrote {out}\n" + json.dumps(figures, indent=2))


def _integers(text: str, option: str) -> list[int]:
    """A comma list of integers, e.g. ``--widths 24,48,96`` (their bounds are the config's to check)."""
    try:
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ConfigError(f"{option} must be a comma list of integers, got {text!r}") from None


def _numbers(text: str, option: str) -> list[float]:
    """A number or a comma list of numbers, e.g. ``--lam 0,0.1,1``."""
    try:
        return [float(p.strip()) for p in text.split(",")]
    except ValueError:
        raise ConfigError(f"{option} must be a number or a comma list of numbers, got {text!r}") from None


@app.command("search")
def distill_search(
    ctx: typer.Context,
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
    from ragsc.distill.runs import check_out, search_student
    from ragsc.distill.store import TeacherStore

    lams = _numbers(lam, "--lam")
    check_out(out, len(lams) > 1, "--out")
    op_names = tuple(o.strip() for o in ops.split(",") if o.strip()) if ops is not None else None
    s = TeacherStore(store)
    rows = search_student(s, out, lams=lams, complexity=complexity, budget=budget, epochs=epochs,
                          retrain_epochs=retrain_epochs, image_size=image_size, channels=channels,
                          layers=layers, nodes=nodes, reductions=reductions, ops=op_names,
                          skip_guard=SkipGuard(max_skip=max_skip), batch_size=batch_size, lr_w=lr_w,
                          lr_alpha=lr_alpha, val_fraction=val_fraction, seed=seed,
                          info={"command": provenance(ctx)}, progress=True)
    typer.echo(table([[f"{r['lam']:g}", f"{r['params']:,}", f"{r['macs']:,}", f"{r['val_cosine']:.4f}",
                       f"{r['val_kd']:.4f}", f"{r['search_seconds']:.1f}", r["folder"]] for r in rows],
                     ["lambda", "parameters", "MACs", "val cosine", "val KD loss", "search s", "student"]))
    if len(rows) > 1:
        typer.echo(f"wrote {out / 'front.png'}, {out / 'front.json'} and {out / 'front.csv'}")
    typer.echo(f"load with load_encoder('student:{rows[0]['folder']}')" if len(rows) == 1
               else f"load each with load_encoder('student:{out}/lam-<lambda>')")


@app.command("eval")
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
