"""KDL-DARTS and student scoring on teacher stores: what ``ragsc distill search`` and ``eval`` run.

* :func:`search_student`: the store's images, split into train / validation by a seed, go through
  :func:`~ragsc.distill.darts.lambda_front` (search, derive, stage-1 KD retraining, validation score) for
  one ``lam`` or several; each result is saved as a student folder (its config holding an
  :class:`~ragsc.distill.students.ImageStudentConfig` of kind ``darts`` with the searched
  :class:`~ragsc.distill.darts.ArchitectureConfig`, the weights beside it), which
  ``load_encoder("student:<dir>")`` loads. Each search checkpoints into ``lam-<lam>`` under
  :func:`checkpoint_folder`,
  so a killed run resumes after its last complete epoch when rerun with the same settings.
* :func:`score_student`: a student against its teacher on a held-out store (mean cosine, r@1,
  caption r@1, parameters of student and teacher).

Everything a user can get wrong (a lambda, a size, a budget no architecture meets, a folder of another
teacher) is checked before the store's images are read or anything is written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from ragsc.distill.darts import (
    COMPLEXITIES,
    PRIMITIVES,
    LambdaPoint,
    SearchSpaceConfig,
    SkipGuard,
    check_budget,
    lambda_front,
    plot_front,
)
from ragsc.distill.darts.train import check_training
from ragsc.distill.store import TeacherStore
from ragsc.distill.student_nets import ImageStudent, ImageStudentConfig
from ragsc.distill.students import (
    StudentConfig,
    StudentEncoder,
    TeacherRef,
    is_student,
    read_config,
    save_student,
)
from ragsc.errors import ConfigError, InputError

FRONT_COLUMNS = ["lam", "params", "macs", "val_cosine", "val_kd", "search_seconds", "folder", "genotype"]


def point_folder(out: Path, lam: float, front: bool) -> Path:
    """Where a searched student goes: ``out`` itself for one ``lam``, ``out/lam-<lam>`` on a front."""
    return out / f"lam-{float(lam)!r}" if front else out


def _check_lams(lams) -> list[float]:
    if isinstance(lams, (str, bytes)) or not isinstance(lams, Sequence) or not lams:
        raise ConfigError(f"lams must be a non-empty list of complexity weights, got {lams!r}")
    for lam in lams:
        number = isinstance(lam, (int, float)) and not isinstance(lam, bool)
        if not number or not math.isfinite(lam) or lam < 0:
            raise ConfigError(f"each lambda must be a finite number >= 0, got {lam!r}")
    if len({float(x) for x in lams}) != len(lams):
        raise ConfigError(f"the lambdas {list(lams)} list a value twice")
    return [float(x) for x in lams]


def checkpoint_folder(out: Path, front: bool) -> Path:
    """Where the searches checkpoint: ``out/checkpoint`` on a front (``out`` is a run folder); beside the
    student's folder for one ``lam`` (``<out>.checkpoint``: a saved model's folder holds the model alone)."""
    return out / "checkpoint" if front else out.with_name(out.name + ".checkpoint")


def _front_files(folder: Path) -> str | None:
    """A ``reuse`` rule (:func:`ragsc.targets.check_folder`): a previous front's run folder, resumed."""
    for entry in sorted(folder.iterdir()):
        folders = entry.name.startswith("lam-") or entry.name == "checkpoint"
        if (entry.is_dir() and not entry.is_symlink()) != folders or not (
                folders or entry.name in ("front.png", "front.json", "front.csv")):
            return (f"holds {entry.name}: only a previous front's lam-*/, checkpoint/ and front.png / .json "
                    "/ .csv may be there; name a new or empty folder")
    return None


def _checkpoints(folder: Path) -> str | None:
    """A ``reuse`` rule: a previous search's checkpoint folder (``lam-*`` folders), resumed."""
    for entry in sorted(folder.iterdir()):
        if not (entry.name.startswith("lam-") and entry.is_dir() and not entry.is_symlink()):
            return (f"holds {entry.name}: only a previous search's lam-*/ checkpoints may be there; name a "
                    "new or empty folder")
    return None


def check_out(out: str | Path, front: bool, option: str | None = None) -> Path:
    """Refuse a search's ``out`` before any work (:mod:`ragsc.targets`).

    One ``lam`` (``front`` False): ``out`` is new, empty, or a student (its image tower is replaced, a
    text tower kept), and its checkpoint folder beside it (:func:`checkpoint_folder`) new, empty or a
    previous search's. A front: ``out`` is new, empty, or a previous front's run folder. Whether a student
    there is of the store's teacher is checked by :func:`search_student`.
    """
    from ragsc.saved import check_target
    from ragsc.targets import check_folder

    out = Path(out)
    if front:
        return check_folder(out, option, reuse=_front_files)
    check_target(out, overwrite=True, kind=StudentEncoder.kind, option=option)
    check_folder(checkpoint_folder(out, front), f"{option}'s checkpoint folder" if option else None,
                 reuse=_checkpoints)
    return out


def _check_student_folder(folder: Path, teacher: dict) -> None:
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file; the student goes into a folder")
    if folder.is_dir() and any(folder.iterdir()) and not is_student(folder):
        raise InputError(f"{folder} holds something other than a student: name a new folder")
    if is_student(folder):
        existing = read_config(folder)
        if existing.teacher.fingerprint != teacher["fingerprint"]:
            raise InputError(f"{folder} holds a student of another teacher ({existing.teacher.spec}, "
                             f"fingerprint {existing.teacher.fingerprint}), not of {teacher['spec']} "
                             f"({teacher['fingerprint']}); use another folder")


def search_student(store: TeacherStore, out: str | Path, *, lams: Sequence[float] = (0.1,),
                   complexity: str = "params", budget: float | None = None, epochs: int = 10,
                   retrain_epochs: int = 10, image_size: int = 32, channels: int = 8, layers: int = 5,
                   nodes: int = 4, reductions: int = 2, ops: Sequence[str] | None = None,
                   skip_guard: SkipGuard = SkipGuard(), batch_size: int = 64, lr_w: float = 0.025,
                   lr_alpha: float = 3e-4, val_fraction: float = 0.2, seed: int = 0, info: dict | None = None,
                   progress: bool = False) -> list[dict]:
    """Search image students on a teacher store and save each as a loadable student folder.

    Parameters
    ----------
    store
        A store of images (``ragsc distill cache``); its teacher embeddings are the targets.
    out
        One ``lam``: the student's folder (its checkpoint beside it, ``<out>.checkpoint``). Several:
        ``out/lam-<lam>`` per student, ``front.png`` / ``front.json`` / ``front.csv`` and the checkpoints
        (``out/checkpoint``) in ``out``.
        A student of the same teacher already there keeps its text tower.
    lams
        The complexity weights (see :func:`~ragsc.distill.darts.search`).
    complexity
        ``"params"`` or ``"macs"``: the penalty's and the budget's measure.
    budget
        The most parameters or MACs of each derived student (None: no budget); a budget no derivable
        architecture meets fails here, before any image is read.
    epochs, retrain_epochs
        Search epochs and stage-1 KD retraining epochs.
    image_size, channels, layers, nodes, reductions, ops
        The search space (:class:`~ragsc.distill.darts.SearchSpaceConfig`, RGB input); the student keeps
        these sizes. ``ops``: default every primitive.
    skip_guard, batch_size, lr_w, lr_alpha
        As in :func:`~ragsc.distill.darts.search`.
    val_fraction, seed
        The seeded validation share of the store's items (scores the students); the seed also seeds the
        networks and the search.
    info
        Extra entries for each student's ``info`` (e.g. the command).
    progress
        tqdm bars (lambdas, search epochs, retraining epochs).

    Returns
    -------
    list of dict
        Per ``lam``: its figures (``params``, ``macs``, ``val_cosine``, ``val_kd``, ``search_seconds``,
        ``genotype``, ...) and ``folder``.

    Raises
    ------
    ConfigError
        A bad setting (named), or a budget no architecture of the space meets.
    InputError
        The store holds no images or too few to split, ``out`` may not be written (:func:`check_out`), or
        a folder holds another teacher's student.
    """
    from ragsc.config import validate
    from ragsc.distill.train import image_inputs, split, to_student_pixels

    lams = _check_lams(lams)
    if complexity not in COMPLEXITIES:
        raise ConfigError(f"complexity must be one of {', '.join(COMPLEXITIES)}, got {complexity!r}")
    for name, value in (("epochs", epochs), ("retrain_epochs", retrain_epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    check_training(epochs, batch_size, lr_w=lr_w, lr_alpha=lr_alpha)  # before the images are read
    if not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must be in (0, 1): the students are scored on that share, "
                          f"got {val_fraction!r}")
    if not isinstance(skip_guard, SkipGuard):
        raise ConfigError(f"skip_guard must be a SkipGuard, got {type(skip_guard).__name__}")
    dim = int(store.teacher["dim"])
    space = SearchSpaceConfig(in_channels=3, image_size=image_size, channels=channels, layers=layers,
                              nodes=nodes, ops=tuple(PRIMITIVES if ops is None else ops), out_dim=dim,
                              reductions=reductions, seed=seed)
    # the student's sizes (the searched architecture is checked against them when it is saved)
    validate(ImageStudentConfig, {"image_size": image_size, "out_dim": dim}, "distill search")
    front = len(lams) > 1
    out = check_out(out, front)
    for lam in lams:
        _check_student_folder(point_folder(out, lam, front), store.teacher)
    if budget is not None:
        check_budget(space, budget, complexity, skip_guard.max_skip)  # before the images are read
    t = store.tensors()
    if not bool(t["has_image"].all()):
        raise InputError(f"{store.path}: a searched image student needs a store of images")
    train_idx, val_idx = split(len(store), val_fraction, seed)
    if not len(train_idx) or not len(val_idx):
        raise InputError(f"{store.path} holds {len(store)} item(s): too few for a train and a validation "
                         f"split at val_fraction {val_fraction}")

    pixels, targets = image_inputs(store, image_size, views=False)
    x, target = to_student_pixels(pixels[:, 0]), targets[:, 0].float()
    tr, va = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
    points = lambda_front(x[tr], target[tr], x[va], target[va], lams, space, epochs=epochs,
                          retrain_epochs=retrain_epochs, batch_size=batch_size, lr_w=lr_w, lr_alpha=lr_alpha,
                          seed=seed, complexity=complexity, skip_guard=skip_guard, budget=budget,
                          checkpoint=checkpoint_folder(out, front), progress=progress)
    rows = []
    for point in points:
        folder = point_folder(out, point.lam, front)
        figures = {"lam": point.lam, "complexity": complexity, "budget": budget, "params": point.params,
                   "macs": point.macs, "val_cosine": point.score, "val_kd": 1.0 - point.score,
                   "search_seconds": round(point.seconds, 2), "epochs": epochs,
                   "retrain_epochs": retrain_epochs,
                   "store": str(store.path), "train_items": len(train_idx), "val_items": len(val_idx),
                   "seed": seed, "genotype": json.loads(point.genotype.to_json()), **(info or {})}
        _save_point(folder, point, store, image_size, figures)
        rows.append({**figures, "folder": str(folder)})
    if front:
        plot_front(points, out / "front.png")
        (out / "front.json").write_text(json.dumps(rows, indent=1))
        from ragsc.report import write_csv

        write_csv([{k: json.dumps(r[k]) if k == "genotype" else r[k] for k in FRONT_COLUMNS} for r in rows],
                  out / "front.csv", FRONT_COLUMNS)
    return rows


def _save_point(folder: Path, point: LambdaPoint, store: TeacherStore, image_size: int,
                figures: dict) -> None:
    """The retrained network as the image tower of a student folder (a text tower there is kept)."""
    arch = point.network.config
    config = ImageStudentConfig(kind="darts", image_size=image_size, out_dim=arch.out_dim,
                                architecture=json.loads(arch.to_json()))
    tower = ImageStudent(config)
    tower.backbone.load_state_dict(point.network.state_dict())  # the head adds nothing: no second projection
    tower.eval()
    existing = read_config(folder) if is_student(folder) else None
    text_config = existing.text if existing is not None else None
    text_net = StudentEncoder(folder).text_net if text_config is not None else None
    all_info = {**(existing.info if existing is not None else {}), "image": figures}
    save_student(folder, StudentConfig(teacher=TeacherRef(**store.teacher), image=config, text=text_config,
                                       info=all_info), tower, text_net)


def check_serves(folder: str | Path, store: TeacherStore) -> StudentConfig:
    """The student's config, when ``store`` was computed by the teacher the student serves.

    Raises
    ------
    InputError
        Another teacher computed the store (both fingerprints named).
    ModelLoadError
        No student in ``folder``.
    """
    folder = Path(folder)
    config = read_config(folder)
    if config.teacher.fingerprint != store.teacher["fingerprint"]:
        raise InputError(f"{store.path} holds the outputs of {store.teacher['spec']} (fingerprint "
                         f"{store.teacher['fingerprint']}), but the student {folder} serves "
                         f"{config.teacher.spec} (fingerprint {config.teacher.fingerprint}); score it on a "
                         f"store of its own teacher")
    return config


def score_student(folder: str | Path, store: TeacherStore, teacher=None) -> dict:
    """Score a student against its teacher on a (held-out) store.

    Parameters
    ----------
    folder
        A student folder (``student:<dir>``).
    store
        A teacher store of the teacher the student serves.
    teacher
        Optional: the teacher's encoder, for its parameter counts.

    Returns
    -------
    dict
        ``student``, ``store``, ``teacher`` (spec, fingerprint, dim) and ``towers``: per tower the store can
        score (images, texts), :func:`~ragsc.distill.train.evaluate_student`'s figures (``cosine``,
        ``r@1``, ``items``, ``caption_r@1`` for images of a captioned store), ``student_params`` and, with
        ``teacher``, ``teacher_params`` and ``param_ratio`` (student / teacher).

    Raises
    ------
    InputError
        The store's teacher is not the student's (both fingerprints named), or no tower of the student
        has items in the store.
    """
    from ragsc.distill.train import evaluate_student

    folder = Path(folder)
    config = check_serves(folder, store)
    student = StudentEncoder(folder)
    t = store.tensors()
    counts = student.num_parameters()
    towers = {}
    for modality, net, tower_config, flag in (("image", student.image_net, config.image, "has_image"),
                                              ("text", student.text_net, config.text, "has_text")):
        if net is None or not bool(t[flag].all()):
            continue
        figures = {**evaluate_student(net, tower_config, store), "student_params": counts[modality]}
        if teacher is not None:
            figures["teacher_params"] = teacher.num_parameters()[modality]
            figures["param_ratio"] = (counts[modality] / figures["teacher_params"]
                                      if figures["teacher_params"] else None)
        towers[modality] = figures
    if not towers:
        has = [m for m, f in (("images", "has_image"), ("texts", "has_text")) if bool(t[f].all())]
        own = [m for m, net in (("image", student.image_net), ("text", student.text_net)) if net is not None]
        raise InputError(f"nothing to score: {store.path} holds {' and '.join(has) or 'mixed items'}, the "
                         f"student {folder} has only a {' and '.join(own)} tower")
    return {"student": str(folder), "store": str(store.path), "teacher": dict(store.teacher),
            "towers": towers}
