"""Distillation against its teacher and the baselines (#12): the towers, over the channel, stored outputs.

    python benchmarks/bench_distill.py [--part towers,channel,store,pipeline] [--data easy-vqa,fashion-mnist]
                                       [--stores stores] [--labels 0.01,0.1,1] [--symbols 16]

``towers`` (default): the shipped students against the teacher: parameters (``num_parameters()``),
encoding speed (items/s, batch 64, both in this run) and how well the student stands in for the teacher
on data neither trained on: easy-VQA's test split and the sample photos (image: cosine to the teacher,
R@1 of its own teacher embedding, caption R@1), WordNet example sentences and the KB corpus (text).

``channel``: RKD-SC's comparison made offline, per dataset (easy-VQA shapes, Fashion-MNIST; teacher
stores computed once under ``--stores``, their held-out test splits scored) and per share of the labels:
classification over AWGN, Rayleigh and Rician at -10..20 dB, every row at ``--symbols`` complex symbols
per image. Rows: the teacher (its stored embeddings through a CAT codec + task head trained through
the channel); a plain-KD student (stage 1 from the store, then the same receiver behind it, frozen);
the two-stage robust KD student (stage 1, then student + CAT + head through the channel), both with a
hand-designed CNN and with the architecture KDL-DARTS finds (lambda 0.1 on parameters; the CNN is
sized to the searched network's parameters); the same CNN from scratch on the labels only; and a
DeepJSCC-style network trained end to end through the channel on the labels. Then each student's worst
and mean ratio to the teacher's accuracy at SNR >= 0 dB.

``store``: an epoch of KD from the stored teacher outputs against online KD (the teacher run on every
batch), the same student, batches and steps, and 10 epochs including the caching.

``pipeline``: the student (``--student``) as the multitask pipeline's transmitter with the teacher's
KBs and decoders, each task's primary metric against the teacher's on the same items and noise; with
``--student-decoders DIR`` also the student with decoders trained behind it (``ragsc decoders train
--encoder student:embedded --only image,vqa --out DIR``: the image generator and the VQA head learn the
student's embeddings; the text decoders and the PCA basis stay the teacher's), and with ``--student-kbs
DIR`` that row's KBs are the multitask spec's KBs built by the student under ``DIR`` (built on first use):
the student then retrieves its own embeddings of the KB's images.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import copy  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from _common import Table, add_results_args, machine, write_results  # noqa: E402

from ragsc.channel.cat import CATCodec, CATConfig  # noqa: E402
from ragsc.datasets import load_easy_vqa, load_photos  # noqa: E402
from ragsc.datasets.corpus import text_corpus  # noqa: E402
from ragsc.datasets.heldout import wordnet_examples  # noqa: E402
from ragsc.distill.darts import (  # noqa: E402
    ArchitectureConfig,
    SearchNetwork,
    SearchSpaceConfig,
    derive,
    search,
)
from ragsc.distill.deepjscc import DeepJSCC, DeepJSCCConfig, evaluate_deepjscc, train_deepjscc  # noqa: E402
from ragsc.distill.robust import (  # noqa: E402
    evaluate_features,
    evaluate_over_channel,
    train_receiver,
    train_robust,
)
from ragsc.distill.store import DataRecipe, TeacherStore, build_store  # noqa: E402
from ragsc.distill.student_nets import ImageStudent, ImageStudentConfig  # noqa: E402
from ragsc.distill.train import embed_store, image_inputs, keep_labels, to_student_pixels, train_student  # noqa: E402
from ragsc.encoders import load_encoder  # noqa: E402
from ragsc.errors import RagscError  # noqa: E402
from ragsc.report import table  # noqa: E402


def speed(fn, items, repeat: int = 1) -> tuple[torch.Tensor, float]:
    fn(items[:8])  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fn(items)
    return out.embeddings, repeat * len(items) / (time.perf_counter() - t0)


def retrieval(query: torch.Tensor, keys: torch.Tensor) -> float:
    q, k = F.normalize(query, dim=-1), F.normalize(keys, dim=-1)
    return float((q @ k.T).argmax(1).eq(torch.arange(len(q))).float().mean())


def caption_r1(images: torch.Tensor, captions: list[str], caption_emb: dict[str, torch.Tensor]) -> float:
    unique = sorted(caption_emb)
    keys = F.normalize(torch.stack([caption_emb[c] for c in unique]), dim=-1)
    best = (F.normalize(images, dim=-1) @ keys.T).argmax(1).tolist()
    return sum(unique[j] == c for j, c in zip(best, captions)) / len(captions)


def stores(args, data: str, teacher) -> tuple[TeacherStore, TeacherStore]:
    """The train and test stores of ``data`` under ``--stores`` (computed once, resumed, checked)."""
    recipes = {"easy-vqa": (DataRecipe(source="train", label_field="shape"),
                            DataRecipe(source="test", label_field="shape")),
               "fashion-mnist": (DataRecipe(source="fashion-mnist:train", n=args.fm_train),
                                 DataRecipe(source="fashion-mnist:test", n=args.fm_test))}[data]
    out = []
    for split_name, recipe in zip(("train", "test"), recipes):
        path = Path(args.stores) / f"{data}-{split_name}-{recipe.n or 'all'}"
        t0 = time.perf_counter()
        out.append(build_store(path, teacher, recipe, progress=True))
        print(f"{path}: {len(out[-1])} items ({time.perf_counter() - t0:.0f}s)", flush=True)
    return out[0], out[1]


def codec(dim: int, args, seed: int) -> CATCodec:
    """The channel codec of every row but DeepJSCC: one CAT for all SNRs and channels, sent at
    ``--symbols`` complex symbols per image."""
    return CATCodec(CATConfig(token_dim=dim, target_dim=dim, model_dim=64, layers=1, heads=4, max_tokens=1,
                              max_symbols=args.symbols, levels=(args.symbols,), snr_range_db=(-10.0, 20.0),
                              seed=seed))


def searched(args, x: torch.Tensor, t: torch.Tensor, dim: int, data: str,
             teacher: str) -> tuple[ArchitectureConfig, float, bool]:
    """KDL-DARTS on (a share of) the training split: the derived architecture, the search seconds and
    whether they were kept from an earlier run.

    The result is kept beside the stores (``<stores>/<data>-kdl-darts-<key>.json``) and reused by a
    later run only when everything the search depends on is the same: the settings, the teacher's
    fingerprint (``teacher``), the images and embeddings searched on, and the search code
    (``ragsc/distill/darts/``). A search takes about half an hour here."""
    import ragsc.distill.darts as darts_module

    n = min(len(x), args.search_items)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed))[:n]
    content = hashlib.sha256(x[order].numpy().tobytes() + t[order].numpy().tobytes()).hexdigest()[:16]
    sources = sorted(Path(darts_module.__file__).parent.glob("*.py"))  # the package's modules
    code = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    settings = {"data": data, "teacher": teacher, "searched": content, "code": code, "items": n,
                "epochs": args.search_epochs, "image_size": args.image_size, "channels": 6, "layers": 5,
                "lam": 0.1, "seed": args.seed, "dim": dim}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    kept = Path(args.stores) / f"{data}-kdl-darts-{key}.json"
    if kept.exists():
        try:
            saved = json.loads(kept.read_text())
            if saved["settings"] != settings:
                raise ValueError("its settings differ")
            arch = ArchitectureConfig.from_json(saved["architecture"])
            print(f"reusing the KDL-DARTS search kept in {kept}", flush=True)
            return arch, float(saved["search_seconds"]), True
        except (ValueError, KeyError, TypeError, RagscError) as err:  # JSONDecodeError is a ValueError
            print(f"not reusing {kept} ({err}): searching again", flush=True)
    cut = int(0.8 * n)
    tr, va = order[:cut], order[cut:]
    space = SearchSpaceConfig(image_size=args.image_size, channels=6, layers=5, out_dim=dim, seed=args.seed)
    t0 = time.perf_counter()
    net = SearchNetwork(space)
    search(net, to_student_pixels(x[tr]), t[tr], to_student_pixels(x[va]), t[va], epochs=args.search_epochs,
           lam=0.1, seed=args.seed, progress=True)
    genotype = derive(net)
    seconds = time.perf_counter() - t0
    arch = ArchitectureConfig(genotype, in_channels=3, image_size=args.image_size, channels=6, layers=5,
                              reductions=2, out_dim=dim, seed=args.seed)
    kept.parent.mkdir(parents=True, exist_ok=True)
    tmp = kept.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"architecture": arch.to_json(), "search_seconds": seconds,
                               "settings": settings}, indent=1))
    os.replace(tmp, kept)  # a run killed while writing leaves no half-written file behind
    return arch, seconds, False


def matched_widths(params: int, size: int, dim: int) -> tuple[int, ...]:
    """The hand-designed CNN (w, 2w, 4w) whose parameter count is closest to ``params``."""
    def count(w: int) -> int:
        cfg = ImageStudentConfig(image_size=size, widths=(w, 2 * w, 4 * w), out_dim=dim)
        return sum(p.numel() for p in ImageStudent(cfg).parameters())
    w = min(range(4, 65), key=lambda w: abs(count(w) - params))
    return (w, 2 * w, 4 * w)


def over_the_channel(args, data: str) -> list[Table]:
    """Part ``channel``: classification over the channel at equal channel uses, every row of RKD-SC's
    comparison, on ``data``'s held-out test split."""
    torch.manual_seed(args.seed)
    teacher = load_encoder("embedded")
    train, test = stores(args, data, teacher)
    dim, classes, size = train.teacher["dim"], len(train.labels), args.image_size
    xtr = image_inputs(train, size, views=False)[0][:, 0]
    xte = image_inputs(test, size, views=False)[0][:, 0]
    ttr, tte = train.tensors()["image"], test.tensors()["image"]
    ytr, yte = train.tensors()["label"], test.tensors()["label"]
    snrs = tuple(float(v) for v in args.snr.split(","))
    channels = tuple(args.channels.split(","))
    evaluate = dict(snrs=snrs, channels=channels, n_symbols=args.symbols, seed=args.seed + 100)
    fit = dict(epochs=args.channel_epochs, batch_size=64, lr=2e-3, seed=args.seed)
    arch, search_s, kept = searched(args, xtr, ttr, dim, data, train.teacher["fingerprint"])
    darts_cfg = ImageStudentConfig(kind="darts", image_size=size, out_dim=dim,
                                   architecture=json.loads(arch.to_json()))
    darts_params = sum(p.numel() for p in ImageStudent(darts_cfg).parameters())
    widths = matched_widths(darts_params, size, dim)
    hand_cfg = ImageStudentConfig(image_size=size, widths=widths, out_dim=dim)
    hand_params = sum(p.numel() for p in ImageStudent(hand_cfg).parameters())
    t_params = teacher.num_parameters()["image"]
    print(f"\n{data}: {len(train)} train / {len(test)} test images, {classes} classes, "
          f"{args.symbols} complex symbols per image; KDL-DARTS search {search_s:.0f}s"
          f"{' (kept from an earlier run)' if kept else ''} -> "
          f"{darts_params:,} parameters "
          f"({darts_params / t_params:.2%} of the teacher's {t_params:,}); hand-designed CNN "
          f"{hand_cfg.widths}: {hand_params:,}", flush=True)
    results, tables = [], []

    clock = [time.perf_counter()]

    def add(name: str, share: float, rows: list[dict], params: int) -> None:
        results.extend({"method": name, "labels": share, "params": params, **r} for r in rows)
        now = time.perf_counter()
        print(f"  {name}, {share:g} of the labels: trained and scored in {now - clock[0]:.0f}s", flush=True)
        clock[0] = now

    for share in (float(v) for v in args.labels.split(",")):
        lab = keep_labels(ytr, share, args.seed)
        # the teacher: its stored embeddings through the same codec and head
        r = train_receiver(ttr, ttr, lab, codec(dim, args, args.seed), num_classes=classes, **fit)
        add("teacher", share, evaluate_features(tte, tte, yte, r.codec, r.head, **evaluate), t_params)
        # stage 1 (feature mimicry from the store), shared by plain KD and the two-stage RKD student
        for name, cfg, params in (("hand", hand_cfg, hand_params), ("searched", darts_cfg, darts_params)):
            s1 = train_student(train, cfg, objective="kd", label_fraction=share, epochs=args.epochs,
                               views=False, seed=args.seed).student
            if name == "hand":  # plain KD: the stage-1 student frozen, the receiver trained behind it
                ftr, fte = embed_store(s1, train, cfg), embed_store(s1, test, cfg)
                r = train_receiver(ftr, ttr, lab, codec(dim, args, args.seed), num_classes=classes, **fit)
                add("plain KD", share, evaluate_features(fte, tte, yte, r.codec, r.head, **evaluate), params)
            r = train_robust(train, copy.deepcopy(s1), cfg, codec(dim, args, args.seed), label_fraction=share,
                             **fit)
            add(f"RKD two-stage ({name})", share,
                evaluate_over_channel(test, r.student, cfg, r.codec, r.head, **evaluate), params)
        # the same hand-designed student from scratch: labels only, no teacher anywhere
        s0 = train_student(train, hand_cfg, objective="scratch", label_fraction=share, epochs=args.epochs,
                           views=False, seed=args.seed).student
        ftr, fte = embed_store(s0, train, hand_cfg), embed_store(s0, test, hand_cfg)
        r = train_receiver(ftr, ftr, lab, codec(dim, args, args.seed), num_classes=classes, **fit)
        add("scratch", share, evaluate_features(fte, fte, yte, r.codec, r.head, **evaluate), hand_params)
        # DeepJSCC-style: end to end through the channel on the labels, the same CNN, the same symbols
        jscc = DeepJSCC(DeepJSCCConfig(image_size=size, widths=hand_cfg.widths, n_symbols=args.symbols,
                                       num_classes=classes, seed=args.seed))
        train_deepjscc(jscc, xtr, lab, epochs=args.epochs, seed=args.seed)
        add("DeepJSCC-style", share, evaluate_deepjscc(jscc, xte, yte, snrs=snrs, channels=channels,
                                                       seed=args.seed + 100), jscc.num_parameters())
        tables.append(print_accuracy(results, share, snrs, channels, data))
    tables.append(print_goals(results, snrs, channels, data))
    return tables


def print_accuracy(results: list[dict], share: float, snrs, channels, data: str) -> Table:
    rows = []
    for method in dict.fromkeys(r["method"] for r in results if r["labels"] == share):
        for ch in channels:
            acc = {r["snr_db"]: r["accuracy"] for r in results
                   if r["method"] == method and r["labels"] == share and r["channel"] == ch}
            params = next(r["params"] for r in results if r["method"] == method)
            rows.append([method, f"{share:g}", f"{params:,}", ch] + [f"{acc[s]:.3f}" for s in snrs])
    out = Table(f"channel_{data}_labels_{share:g}", ["method", "labels", "params", "channel"]
                + [f"{s:g} dB" for s in snrs], rows,
                title=f"{data}: accuracy over the channel, {share:g} of the labels")
    print(table(out.rows, out.columns), flush=True)
    return out


def print_goals(results: list[dict], snrs, channels, data: str) -> Table:
    """Each student's worst ratio to the teacher's accuracy at SNR >= 0 dB, per label share."""
    rows = []
    for share in dict.fromkeys(r["labels"] for r in results):
        ref = {(r["channel"], r["snr_db"]): r["accuracy"] for r in results
               if r["method"] == "teacher" and r["labels"] == share}
        for method in dict.fromkeys(r["method"] for r in results if r["method"] != "teacher"):
            ratios = [r["accuracy"] / ref[(r["channel"], r["snr_db"])] for r in results
                      if r["method"] == method and r["labels"] == share and r["snr_db"] >= 0
                      and ref[(r["channel"], r["snr_db"])] > 0]
            rows.append([data, method, f"{share:g}", f"{min(ratios):.1%}", f"{np.mean(ratios):.1%}"])
    out = Table(f"goals_{data}", ["data", "method", "labels", "worst", "mean"], rows,
                title=f"{data}: accuracy relative to the teacher's, at SNR >= 0 dB on {', '.join(channels)} "
                      "(goal: >= 97 % everywhere)")
    print("\n" + out.title)
    print(table(out.rows, out.columns), flush=True)
    return out


def stored_vs_online(args) -> Table:
    """Part ``store``: an epoch of KD from the stored teacher outputs against one that runs the teacher
    (online KD), the same student, batches and steps; and the time of 10 epochs with the caching."""
    from ragsc.distill.losses import kd_loss

    teacher = load_encoder("embedded")
    recipe = DataRecipe(source="train", n=args.store_items, label_field="shape")
    folder = Path(args.stores) / f"timing-{args.store_items}"
    if folder.exists():
        shutil.rmtree(folder)  # timed from nothing
    t0 = time.perf_counter()
    store = build_store(folder, teacher, recipe)
    cache_s = time.perf_counter() - t0
    cfg = ImageStudentConfig(image_size=args.image_size, widths=(16, 32, 64), out_dim=store.teacher["dim"])
    x = to_student_pixels(image_inputs(store, cfg.image_size, views=False)[0][:, 0])
    stored = store.tensors()["image"]
    images = [it.image for it in store.inputs()]
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed)).split(64)

    def epoch(online: bool) -> tuple[float, ImageStudent, float]:
        torch.manual_seed(args.seed)
        net = ImageStudent(cfg)
        opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
        gap, t = 0.0, time.perf_counter()
        for idx in order:
            if online:  # the teacher runs on this batch, as online KD does every epoch
                target = teacher.encode_images([images[i] for i in idx.tolist()]).embeddings.float()
                gap = max(gap, float((target - stored[idx]).abs().max()))
            else:
                target = stored[idx]
            loss = kd_loss(net(x[idx])[0], target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - t, net.eval(), gap

    store_s, net_s, _ = epoch(False)
    online_s, net_o, gap = epoch(True)
    with torch.no_grad():
        same = float(F.cosine_similarity(net_s(x)[0], net_o(x)[0], dim=-1).min())
    n = len(x)
    rows = [["online KD (teacher every epoch)", f"{online_s / n * 1e3:.2f}", "-", f"{10 * online_s:.1f}"],
            ["stored teacher outputs", f"{store_s / n * 1e3:.2f}", f"{cache_s / n * 1e3:.1f}",
             f"{cache_s + 10 * store_s:.1f}"]]
    out = Table("store", ["KD from", "ms / item / epoch", "caching ms / item", "10 epochs incl. caching (s)"],
                rows, title=f"stored vs online KD: {n} easy-VQA training images, a {cfg.widths} CNN at "
                            f"{cfg.image_size}px, batch 64, one epoch each from the same initialisation")
    out.notes.append(f"per epoch: stored is {online_s / store_s:.0f}x faster; 10 epochs incl. caching: "
                     f"{10 * online_s / (cache_s + 10 * store_s):.1f}x less time. The teacher's online "
                     f"outputs differ from the stored ones by at most {gap:.1e}, and the two students agree "
                     f"to a cosine of {same:.6f} or more after the epoch: the same training, so the same "
                     "accuracy.")
    print("\n" + out.title)
    print(table(out.rows, out.columns))
    print(out.notes[0], flush=True)
    return out


def in_the_pipeline(args) -> Table:
    """Part ``pipeline``: the student as the multitask pipeline's transmitter, the teacher's KBs and
    decoders unchanged behind it (and, with ``--student-decoders``, decoders trained behind the student);
    each task's primary metric (and the image task's class accuracy, the caption's) per channel and SNR,
    every row on the same items and noise."""
    from ragsc.config import load_pipeline_spec
    from ragsc.eval import PRIMARY, run_eval
    from ragsc.pipelines import Pipeline

    spec = load_pipeline_spec(Path(__file__).resolve().parents[1] / "pipelines" / "multitask.yaml")
    snrs = [float(v) for v in args.snr.split(",")]
    channels = args.channels.split(",")
    runs = [("teacher", "embedded", None), ("student", args.student, None)]
    if args.student_decoders:
        runs.append(("student + its decoders" + (" and KBs" if args.student_kbs else ""), args.student,
                     args.student_decoders))
    scores = {}
    for name, encoder, weights in runs:
        decoder = spec.decoder if weights is None else spec.decoder.model_copy(update={"weights": weights})
        kbs = spec.knowledge_bases
        if weights is not None and args.student_kbs:
            kbs = [kb.model_copy(update={"path": str(Path(args.student_kbs).resolve() / Path(kb.path).name)})
                   for kb in kbs]
        pipe = Pipeline.from_config(spec.model_copy(update={
            "encoder": spec.encoder.model_copy(update={"spec": encoder}), "decoder": decoder,
            "knowledge_bases": kbs}))
        t0 = time.perf_counter()
        rows = run_eval(pipe, channels, snrs, n=args.pipeline_n, seed=args.seed, methods=("semantic+rag",),
                        progress=False)
        print(f"{name} ({encoder}): swept in {time.perf_counter() - t0:.0f}s", flush=True)
        for r in rows:
            scores[(name, r["task"], r["metric"], r["channel"], r["snr_db"])] = r["value"]
    metrics = [(t, m) for t, m in PRIMARY.items()] + [("image", "class_accuracy")]
    names = [name for name, _, _ in runs]
    out = []
    for task, metric in metrics:
        for ch in channels:
            got = {n: [scores.get((n, task, metric, ch, s)) for s in snrs] for n in names}
            if any(v is None for vs in got.values() for v in vs):
                continue
            t = got["teacher"]
            worst = [f"{min(b / a for a, b, s in zip(t, got[n], snrs) if a > 0 and s >= 0):.1%}"
                     for n in names[1:]]
            out.append([f"{task}/{metric}", ch] + [" / ".join(f"{got[n][i]:.3f}" for n in names)
                                                   for i in range(len(snrs))] + worst)
    res = Table("pipeline", ["task/metric", "channel"] + [f"{s:g} dB" for s in snrs]
                + [f"worst ratio: {n}" for n in names[1:]], out,
                title=f"the multitask pipeline, {args.pipeline_n} items per kind, semantic + RAG: "
                      f"{' / '.join(names)} (worst ratio to the teacher at SNR >= 0 dB; goal >= 97 %)")
    print("\n" + res.title)
    print(table(res.rows, res.columns), flush=True)
    return res


def towers(args) -> Table:
    """Part ``towers``: the shipped students against the teacher, tower by tower."""
    teacher, student = load_encoder("embedded"), load_encoder(args.student)
    tp, sp = teacher.num_parameters(), student.num_parameters()
    rows = []
    test = load_easy_vqa("test")[: args.images]
    photos = load_photos()
    for name, imgs, captions in (("easy-VQA test", [x.path for x in test], [x.caption for x in test]),
                                 ("sample photos", [p.pixels for p in photos], [p.caption for p in photos])):
        if not sp["image"] or "image" not in args.towers:
            break
        t_emb, t_speed = speed(teacher.encode_images, imgs)
        s_emb, s_speed = speed(student.encode_images, imgs)
        cap = dict(zip(sorted(set(captions)), teacher.encode_texts(sorted(set(captions))).embeddings))
        cos = float(F.cosine_similarity(s_emb, t_emb, dim=-1).mean())
        rows.append(["image", name, f"{len(imgs)}", f"{tp['image']:,}", f"{sp['image']:,}",
                     f"{tp['image'] / sp['image']:.0f}x", f"{t_speed:.1f}", f"{s_speed:.1f}",
                     f"{s_speed / t_speed:.1f}x", f"{cos:.3f}", f"{retrieval(s_emb, t_emb):.3f}",
                     f"{caption_r1(t_emb, captions, cap):.3f} / {caption_r1(s_emb, captions, cap):.3f}"])
        print(table(rows[-1:], HEADER), flush=True)
    if sp["text"] and "text" in args.towers:
        for name, texts in (("WordNet (held out)", wordnet_examples(args.n_text, seed=7)),
                            ("KB corpus", list(text_corpus())[: args.n_text])):
            t_emb, t_speed = speed(teacher.encode_texts, texts)
            s_emb, s_speed = speed(student.encode_texts, texts)
            cos = float(F.cosine_similarity(s_emb, t_emb, dim=-1).mean())
            rows.append(["text", name, f"{len(texts)}", f"{tp['text']:,}", f"{sp['text']:,}",
                         f"{tp['text'] / sp['text']:.0f}x", f"{t_speed:.1f}", f"{s_speed:.1f}",
                         f"{s_speed / t_speed:.1f}x", f"{cos:.3f}", f"{retrieval(s_emb, t_emb):.3f}", "-"])
            print(table(rows[-1:], HEADER), flush=True)
    print()
    print(table(rows, HEADER))
    return Table("towers", HEADER, rows, title="the shipped students against the teacher, tower by tower")


HEADER = ["tower", "data", "items", "teacher params", "student params", "smaller", "teacher items/s",
          "student items/s", "faster", "cosine to teacher", "R@1 (own teacher emb.)",
          "caption R@1 teacher / student"]

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="towers", help="towers, channel, store (comma list)")
    ap.add_argument("--student", default="student:embedded")
    ap.add_argument("--n-text", type=int, default=500, help="held-out WordNet sentences")
    ap.add_argument("--images", type=int, default=888, help="easy-VQA test images")
    ap.add_argument("--towers", default="image,text", help="which towers to measure")
    ap.add_argument("--data", default="easy-vqa,fashion-mnist", help="channel: datasets")
    ap.add_argument("--stores", default="stores", help="channel / store: folder of the teacher stores "
                                                       "(built there when missing)")
    ap.add_argument("--fm-train", type=int, default=5000, help="Fashion-MNIST training items")
    ap.add_argument("--fm-test", type=int, default=1000, help="Fashion-MNIST test items")
    ap.add_argument("--labels", default="0.01,0.1,1", help="channel: shares of the labels")
    ap.add_argument("--snr", default="-10,-5,0,5,10,15,20")
    ap.add_argument("--channels", default="awgn,rayleigh,rician")
    ap.add_argument("--symbols", type=int, default=16, help="complex channel symbols per image, every row")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=15, help="stage 1 / scratch / DeepJSCC epochs")
    ap.add_argument("--channel-epochs", type=int, default=8, help="epochs through the channel (stage 2, "
                                                                  "receivers)")
    ap.add_argument("--search-epochs", type=int, default=6)
    ap.add_argument("--search-items", type=int, default=1000, help="items the search sees (80 %% train, "
                                                                   "20 %% validation)")
    ap.add_argument("--pipeline-n", type=int, default=24, help="pipeline: items per task kind")
    ap.add_argument("--student-decoders", default=None,
                    help="pipeline: decoders trained behind the student (ragsc decoders train --encoder "
                         "student:embedded --only image,vqa --out DIR): one more row")
    ap.add_argument("--student-kbs", default=None,
                    help="pipeline: with --student-decoders, that row's KBs built by the student in this "
                         "folder")
    ap.add_argument("--store-items", type=int, default=512, help="store: images timed")
    ap.add_argument("--seed", type=int, default=0)
    add_results_args(ap)
    args = ap.parse_args()
    print("machine:", machine(), flush=True)
    parts = args.part.split(",")
    tables = []
    if "towers" in parts:
        tables.append(towers(args))
    if "pipeline" in parts:
        tables.append(in_the_pipeline(args))
    if "store" in parts:
        tables.append(stored_vs_online(args))
    if "channel" in parts:
        for data in args.data.split(","):
            tables += over_the_channel(args, data)
    write_results("bench_distill", tables, args=args)


if __name__ == "__main__":
    main()
