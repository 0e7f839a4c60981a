"""Stage 1 of distillation: a student learns the teacher's embedding from the store (no teacher runs).

:func:`train_student` fits an image or text student (:mod:`ragsc.distill.students`) on a
:class:`~ragsc.distill.store.TeacherStore`: the teacher's embedding of each item (and of each stored
augmented view) is the target, read from disk. Objectives (``objective``):

* ``kd``: ``1 - cos(student, teacher)``, plus the task's cross-entropy through a linear classifier
  on the student's embedding for the labelled items;
* ``ib``: the information-bottleneck loss (:func:`~ragsc.distill.losses.ib_kd_loss`), the student's
  tower ending in a stochastic code with rate weight ``beta``;
* ``scratch``: no teacher at all, the task's cross-entropy alone (the baseline that tells what the
  teacher is worth at a given number of labels).

``label_fraction`` keeps that share of the labels (a seeded draw); the KD term uses every item. A
validation split (``val_fraction``, seeded) picks the best epoch; the reported figures are the
validation ones, a test store is for :func:`evaluate_student`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ragsc.distill.losses import ib_kd_loss, kd_loss
from ragsc.distill.store import StoreItem, TeacherStore, augmented, image_array
from ragsc.distill.student_nets import (
    ImageStudent,
    ImageStudentConfig,
    TextStudent,
    TextStudentConfig,
    load_tokenizer,
    tokenize,
)
from ragsc.errors import ConfigError, InputError

Objective = Literal["kd", "ib", "scratch"]


@dataclass
class TrainResult:
    """The trained tower, its task classifier (or None) and the per-epoch history."""

    student: nn.Module
    classifier: nn.Module | None
    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=dict)
    seconds: float = 0.0


def image_inputs(store: TeacherStore, size: int, views: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The store's images as student inputs ``[N, 1 + V, 3, S, S]`` (original + stored views, uint8)
    and their teacher targets ``[N, 1 + V, D]``."""
    items = store.inputs()
    t = store.tensors()
    if not bool(t["has_image"].all()):
        raise InputError(f"{store.path}: an image student needs a store of images")
    n_views = store.recipe.views if views else 0
    per_view = [_uint8(image_array(items, size))]
    targets = [t["image"]]
    for v in range(n_views):
        aug = [StoreItem(x.key, augmented(x.image, x.key, v, store.recipe.seed), x.text, x.label)
               for x in items]
        per_view.append(_uint8(image_array(aug, size)))
        targets.append(t["views"][:, v])
    return torch.stack(per_view, 1), torch.stack(targets, 1)


def _uint8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round().to(torch.uint8)


def to_student_pixels(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> the students' normalised input (as :func:`~ragsc.distill.students.image_transform`)."""
    return x.float() / 127.5 - 1


def split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train / validation indices."""
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * val_fraction))
    return order[n_val:], order[:n_val]


def keep_labels(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """``labels`` with all but a seeded ``fraction`` of the labelled items set to -1."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"label_fraction must be in (0, 1], got {fraction}")
    out = labels.clone()
    known = (labels >= 0).nonzero().flatten().numpy()
    drop = np.random.default_rng(seed + 1).permutation(known)[int(round(len(known) * fraction)):]
    out[torch.from_numpy(drop).long()] = -1
    return out


class LabelledBatches:
    """Batches of the labelled training items, drawn with replacement, for a task term that reads its own
    batch at every step when only some items are labelled (``partial``): a small label share leaves one or
    two labelled items in a training batch, and none in most, whose cross-entropy is noise as large as the
    other terms' gradient under Adam (easy-VQA, 1 % of the labels: a KD student's cosine to the teacher
    0.12 after 4 epochs, against 0.83 with no task term)."""

    def __init__(self, train_idx: np.ndarray, labels: torch.Tensor, batch_size: int) -> None:
        idx = torch.from_numpy(train_idx)
        self.items = idx[labels[idx] >= 0]
        self.size = min(batch_size, len(self.items))
        self.partial = 0 < len(self.items) < len(idx)

    def draw(self, g: torch.Generator) -> torch.Tensor:
        return self.items[torch.randint(len(self.items), (self.size,), generator=g)]


def train_student(store: TeacherStore, config: ImageStudentConfig | TextStudentConfig, *,
                  objective: Objective = "kd", beta: float = 1e-3, epochs: int = 10, batch_size: int = 128,
                  lr: float = 2e-3, label_fraction: float = 1.0, task_weight: float = 0.5,
                  val_fraction: float = 0.1, data_fraction: float = 1.0, views: bool = True, seed: int = 0,
                  progress: bool = False) -> TrainResult:
    """Train a student tower on a teacher store; returns the best epoch's weights (validation).

    ``data_fraction`` trains on that seeded share of the training split (the validation split is
    unchanged): how much data an objective needs."""
    if objective not in ("kd", "ib", "scratch"):
        raise ConfigError(f"objective must be kd, ib or scratch, got {objective!r}")
    if objective == "ib" and config.code_dim < 1:
        raise ConfigError("objective 'ib' needs a student config with code_dim > 0 (the stochastic code)")
    from ragsc.distill.darts.train import check_training

    # a NaN or infinite rate would reach the optimiser (a torch ValueError) or train to NaN weights
    check_training(epochs, batch_size, lr=lr, beta=beta, task_weight=task_weight)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    t = store.tensors()
    labels = keep_labels(t["label"], label_fraction, seed)
    n_classes = len(store.labels)
    if objective == "scratch" and not bool((labels >= 0).any()):
        raise InputError("training from scratch needs labels; this store has none")
    image = isinstance(config, ImageStudentConfig)
    if image:
        x, targets = image_inputs(store, config.image_size, views)
        net: nn.Module = ImageStudent(config)
    else:
        items = store.inputs()
        if not bool(t["has_text"].all()):
            raise InputError(f"{store.path}: a text student needs a store of texts")
        tok = load_tokenizer(config.tokenizer)
        ids, mask, _ = tokenize(tok, [it.text for it in items], config.max_tokens)
        x, targets = (ids, mask), t["text"][:, None]
        net = TextStudent(config, len(tok))
    classifier = None
    if n_classes and objective != "ib" and bool((labels >= 0).any()):
        classifier = nn.Linear(config.out_dim, n_classes)
    train_idx, val_idx = split(len(store), val_fraction, seed)
    if not 0 < data_fraction <= 1:
        raise ConfigError(f"data_fraction must be in (0, 1], got {data_fraction}")
    train_idx = train_idx[: max(1, int(round(len(train_idx) * data_fraction)))]
    if objective == "scratch":
        # no teacher: an unlabelled item teaches nothing, and a batch of only those has no gradient. The
        # labelled items are cycled to the training split's length, so every label share gets as many
        # steps as the distilled students (a few labels seen for a few steps would measure the schedule)
        labelled = train_idx[(labels[train_idx] >= 0).numpy()]
        if not len(labelled):
            raise InputError(f"none of the training items kept a label (label_fraction={label_fraction}): "
                             "training from scratch needs some")
        train_idx = np.resize(labelled, len(train_idx))
    params = list(net.parameters()) + (list(classifier.parameters()) if classifier else [])
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    steps = epochs * max(1, -(-len(train_idx) // batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    g = torch.Generator().manual_seed(seed)
    result = TrainResult(net, classifier)
    best_score, best_state = -float("inf"), None
    # kd with some labels missing: the task term reads its own batch of labelled items at every step
    labelled = LabelledBatches(train_idx, labels, batch_size)
    side_batch = objective == "kd" and classifier is not None and labelled.partial
    for epoch in range(epochs):
        net.train()
        if classifier:
            classifier.train()
        order = torch.from_numpy(train_idx)[torch.randperm(len(train_idx), generator=g)]
        total = 0.0
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            view = torch.randint(0, targets.shape[1], (len(idx),), generator=g)
            inputs = _batch(x, idx, view, image)
            emb, bott = net(*inputs) if not image else net(inputs)
            target = targets[idx, view]
            if side_batch:
                terms = _loss(objective, emb, bott, None, target, labels[idx], beta, task_weight)
                lab = labelled.draw(g)
                lab_view = torch.randint(0, targets.shape[1], (len(lab),), generator=g)
                lab_inputs = _batch(x, lab, lab_view, image)
                task = _task(classifier, (net(lab_inputs) if image else net(*lab_inputs))[0], labels[lab])
                terms = {**terms, "loss": terms["loss"] + task_weight * task, "task": task}
            else:
                terms = _loss(objective, emb, bott, classifier, target, labels[idx], beta, task_weight)
            opt.zero_grad()
            terms["loss"].backward()
            opt.step()
            sched.step()
            total += float(terms["loss"].detach()) * len(idx)
        row = {"epoch": epoch + 1, "train_items": len(train_idx),
               "train_loss": total / max(1, len(train_idx))}
        row.update(_evaluate(net, classifier, x, targets[:, 0], t["label"], val_idx, image))
        result.history.append(row)
        # without a validation split the last epoch is kept
        score = row.get("val_accuracy" if objective == "scratch" else "val_cosine", 0.0)
        if score > best_score or not len(val_idx):
            best_score, result.best = score, dict(row)
            best_state = (copy.deepcopy(net.state_dict()),
                          copy.deepcopy(classifier.state_dict()) if classifier else None)
        if progress:
            print(f"epoch {epoch + 1}/{epochs} " + " ".join(f"{k}={v:.4f}" for k, v in row.items()
                                                           if k != "epoch"), flush=True)
    net.load_state_dict(best_state[0])
    if classifier:
        classifier.load_state_dict(best_state[1])
    net.eval().requires_grad_(False)
    result.seconds = time.perf_counter() - t0
    return result


def _batch(x, idx: torch.Tensor, view: torch.Tensor, image: bool):
    if image:
        return to_student_pixels(x[idx, view])
    ids, mask = x
    return ids[idx], mask[idx]


def _task(classifier: nn.Module, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The task term: cross-entropy of the classifier on the unit-norm embeddings (scaled by 10)."""
    return F.cross_entropy(classifier(F.normalize(emb, dim=-1) * 10), labels)


def _loss(objective: str, emb, bott, classifier, target, labels, beta, task_weight) -> dict:
    if objective == "ib":
        return ib_kd_loss(bott, target, beta, labels, task_weight)
    known = labels >= 0
    task = torch.zeros(())
    if classifier is not None and bool(known.any()):
        task = _task(classifier, emb[known], labels[known])
    if objective == "scratch":
        return {"loss": task, "task": task}
    kd = kd_loss(emb, target)
    return {"loss": kd + task_weight * task, "kd": kd, "task": task}


@torch.no_grad()
def _evaluate(net, classifier, x, targets, labels, idx, image: bool) -> dict:
    if not len(idx):
        return {}
    net.eval()
    idx_t = torch.from_numpy(idx)
    embs = []
    for b in range(0, len(idx_t), 256):
        part = idx_t[b:b + 256]
        inputs = _batch(x, part, torch.zeros(len(part), dtype=torch.long), image)
        embs.append(net(inputs)[0] if image else net(*inputs)[0])
    emb = torch.cat(embs)
    out = {"val_cosine": float(F.cosine_similarity(emb, targets[idx_t], dim=-1).mean())}
    known = labels[idx_t] >= 0
    if classifier is not None and bool(known.any()):
        classifier.eval()
        pred = classifier(F.normalize(emb, dim=-1) * 10).argmax(-1)
        out["val_accuracy"] = float((pred[known] == labels[idx_t][known]).float().mean())
    return out


@torch.no_grad()
def embed_store(net: nn.Module, store: TeacherStore, config: ImageStudentConfig | TextStudentConfig
                ) -> torch.Tensor:
    """The student's embeddings ``[N, D]`` of every item of a store (e.g. a test split's)."""
    net.eval()
    if isinstance(config, ImageStudentConfig):
        x, _ = image_inputs(store, config.image_size, views=False)
        return torch.cat([net(to_student_pixels(x[b:b + 256, 0]))[0] for b in range(0, len(x), 256)])
    tok = load_tokenizer(config.tokenizer)
    ids, mask, _ = tokenize(tok, [it.text for it in store.inputs()], config.max_tokens)
    return torch.cat([net(ids[b:b + 256], mask[b:b + 256])[0] for b in range(0, len(ids), 256)])


def evaluate_student(net: nn.Module, config, store: TeacherStore) -> dict:
    """On a (test) store: the mean cosine to the teacher; ``r@1``, how often the student's embedding
    retrieves its own item's teacher embedding first among the store's (the KB's use of it); and for
    an image student on a captioned store, ``caption_r@1``, how often the nearest of the teacher's
    caption embeddings is the image's own caption (the same text counts: captions repeat)."""
    emb = F.normalize(embed_store(net, store, config), dim=-1)
    t = store.tensors()
    key = "image" if isinstance(config, ImageStudentConfig) else "text"
    teacher = F.normalize(t[key], dim=-1)
    r1 = float((emb @ teacher.T).argmax(1).eq(torch.arange(len(emb))).float().mean())
    out = {"cosine": float((emb * teacher).sum(-1).mean()), "r@1": r1, "items": len(emb)}
    if key == "image" and bool(t["has_text"].all()):
        texts = [x.text for x in store.inputs()]
        unique = sorted(set(texts))
        caps = F.normalize(t["text"][[texts.index(u) for u in unique]], dim=-1)
        best = (emb @ caps.T).argmax(1).tolist()
        out["caption_r@1"] = sum(unique[j] == texts[i] for i, j in enumerate(best)) / len(texts)
    return out


def distill_to_folder(store: TeacherStore, folder, config: ImageStudentConfig | TextStudentConfig,
                      info: dict | None = None, **train_kw) -> tuple[TrainResult, dict]:
    """Train a tower (:func:`train_student`) and write it into the student folder ``folder`` (created,
    or added to a student of the same teacher: the other tower is kept). Returns the result and the
    test-free figures written into the student's ``info``."""
    from ragsc.distill.students import StudentConfig, TeacherRef, is_student, read_config, save_student
    from ragsc.saved import check_target

    folder = check_target(folder, overwrite=True, kind="student")  # before the training, not at the save
    teacher = TeacherRef(**store.teacher)
    existing = read_config(folder) if is_student(folder) else None
    if existing is not None and existing.teacher.fingerprint != teacher.fingerprint:
        raise InputError(f"{folder} holds a student of another teacher ({existing.teacher.spec}); "
                         "use another folder")
    result = train_student(store, config, **train_kw)
    modality = "image" if isinstance(config, ImageStudentConfig) else "text"
    figures = {"store": str(store.path), "items": len(store), "objective": train_kw.get("objective", "kd"),
               "epochs": train_kw.get("epochs", 10), "validation": result.best,
               "seconds": round(result.seconds, 1), **(info or {})}
    towers = {"image": None, "text": None}
    cfgs = {"image": existing.image if existing else None, "text": existing.text if existing else None}
    all_info = dict(existing.info) if existing else {}
    if existing is not None:  # keep the other tower as it is
        from ragsc.distill.students import StudentEncoder

        old = StudentEncoder(folder)
        towers = {"image": old.image_net, "text": old.text_net}
    towers[modality], cfgs[modality], all_info[modality] = result.student, config, figures
    cfg = StudentConfig(teacher=teacher, image=cfgs["image"], text=cfgs["text"], info=all_info)
    save_student(folder, cfg, towers["image"], towers["text"])
    return result, figures
