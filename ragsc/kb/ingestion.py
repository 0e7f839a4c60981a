"""Ingestion: a source's records -> encoded, deduplicated, committed KB items, resumable.

The unit of work is a *shard* (``shard_size`` records) handled by one worker function,
:func:`encode_shard`; the default runs shards one after another in this process (clip-retrieval's
sequential default). Progress (records consumed) is committed in the same generation as the items,
so after a crash ``resume=True`` continues right after the last commit, and content hashes make any
overlap a no-op: no duplicates either way. Progress never moves back: a run without ``resume`` over
records an earlier run consumed (``--limit`` on a finished source) leaves it, and commits nothing if it
adds nothing. A shard is never larger than the items that may still be added before the next checkpoint,
so ``checkpoint_every`` is honoured exactly, below the shard size too.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ragsc.checks import text_chars
from ragsc.encoders.inputs import load_image
from ragsc.errors import InputError
from ragsc.kb.generation import check_encoder
from ragsc.kb.items import NewItem, content_hash
from ragsc.kb.sources import Record, detect_format, records
from ragsc.kb.store import KnowledgeBase

log = logging.getLogger("ragsc.kb")


@dataclass
class IngestReport:
    """What an ingestion did (printed by ``ragsc kb ingest``)."""

    source: str
    seen: int = 0
    added: int = 0
    duplicates: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    notes: Counter = field(default_factory=Counter)  # ingested with a remark (missing caption, ...)
    resumed_from: int = 0
    seconds: float = 0.0

    @property
    def items_per_s(self) -> float:
        return self.seen / self.seconds if self.seconds else 0.0


@dataclass
class ShardResult:
    embeddings: np.ndarray  # [M, dim]
    items: list[NewItem]
    skipped: Counter


def _hash(rec: Record) -> str:
    if rec.path is not None:
        if not rec.path.is_file():
            return "missing:" + str(rec.path)
        return content_hash("image", rec.path.read_bytes())
    # a text is identified by its text; an empty one (skipped later) by its place, so it is not a "duplicate"
    return content_hash("text", (rec.text or "").encode(), "" if rec.text else rec.source_uri)


def encode_shard(shard: list[tuple[Record, str]], encoder, batch_size: int = 64) -> ShardResult:
    """The worker: load and encode one shard's records; unusable ones are skipped with a reason."""
    skipped: Counter = Counter()
    images, image_items, texts, text_items = [], [], [], []
    for rec, h in shard:
        item = NewItem(rec.modality, rec.text, rec.source_uri, h, extra=rec.extra)
        if rec.modality == "image":
            try:
                images.append(load_image(rec.path))
                image_items.append(item)
            except InputError as exc:
                skipped["corrupt_or_missing_image"] += 1
                log.warning("skipped %s: %s", rec.source_uri, exc)
        elif rec.text and rec.text.strip():
            try:
                text_chars(rec.text, len(texts))  # the encoder would refuse the shard for it
            except InputError as exc:
                skipped["text_too_long"] += 1
                log.warning("skipped %s: %s", rec.source_uri, exc)
                continue
            texts.append(rec.text)
            text_items.append(item)
        else:
            skipped["empty_text"] += 1
    parts, items = [], []
    if images:
        parts.append(encoder.encode_images(images).embeddings.cpu().numpy())
        items += image_items
    if texts:
        parts.append(encoder.encode_texts(texts).embeddings.cpu().numpy())
        items += text_items
    emb = np.concatenate(parts) if parts else np.zeros((0, encoder.dim), np.float32)
    return ShardResult(emb, items, skipped)


def _shards(stream: Iterable, size: int, w) -> Iterator[list]:
    """Shards of at most ``size`` records, and at most as many as ``w`` may add before its next checkpoint
    (a record gives one item at most)."""
    it = iter(stream)
    while chunk := list(itertools.islice(it, min(size, w.until_checkpoint() or size))):
        yield chunk


def _fresh(records: Iterable[Record], w, report: IngestReport) -> Iterator[tuple[int, Record, str]]:
    """``(position, record, hash)`` of the records neither stored nor repeated earlier in ``records``;
    counts their notes and the duplicates on ``report``."""
    seen: set[str] = set()
    for i, rec in enumerate(records):
        report.notes.update(rec.notes)
        h = _hash(rec)
        if h in seen or w.has(h):
            report.duplicates += 1
            continue
        seen.add(h)
        yield i, rec, h


def source_key(source: str, fmt: str) -> str:
    """How progress is keyed: format + absolute path (or the easy-VQA split)."""
    return f"{fmt}:{source if fmt == 'easy-vqa' else Path(source).resolve()}"


def ingest(kb: KnowledgeBase, source: str, encoder=None, *, fmt: str | None = None, resume: bool = False,
           batch_size: int = 64, shard_size: int = 512, checkpoint_every: int = 2048,
           images: str | None = None, annotations: str | None = None, limit: int | None = None,
           distributed: str | None = None, progress: bool = True, wait_s: float = 0.0,
           on_wait: Callable[[str], None] | None = None) -> IngestReport:
    """Ingest ``source`` into ``kb`` (see the module docstring).

    The source is validated first, then the writer lock is taken (waiting up to ``wait_s`` seconds
    for another writer, ``on_wait`` told once), and only then is the encoder loaded: a busy KB or a
    bad source costs no model load.

    Parameters
    ----------
    kb
        The KB to fill (this handle follows the commits).
    source
        A folder, file or easy-VQA split (see :mod:`ragsc.kb.sources`).
    encoder
        The KB's encoder; default: loaded from the manifest's spec.
    fmt
        The source format; default: detected.
    resume
        Start after the records a committed ingestion of this source has consumed.
    batch_size, shard_size, checkpoint_every
        Encoder batch, unit of work, and commit interval (in added items).
    images, annotations
        COCO image folder, VQA annotations file.
    limit
        At most this many records.
    distributed
        ``"ray"``: encode shards as Ray tasks (extra ``ray``).
    progress
        Show a progress bar.
    wait_s, on_wait
        How long to wait for another writer's lock, and what to call when waiting starts.

    Returns
    -------
    IngestReport
    """
    from tqdm.auto import tqdm

    from ragsc.encoders import load_encoder

    if distributed not in (None, "ray"):
        raise InputError(f"distributed must be 'ray' or unset, got {distributed!r}")
    if distributed == "ray":
        from ragsc._deps import require_package

        require_package("ray", "ray")
    stream = records(source, fmt, images, annotations)  # validates the source before anything starts
    fmt = fmt or detect_format(source)
    key = source_key(source, fmt)
    with kb.writer(checkpoint_every=checkpoint_every, wait_s=wait_s, on_wait=on_wait) as w:
        encoder = encoder or load_encoder(kb.manifest["encoder"]["spec"])
        check_encoder(kb.path, kb.manifest, encoder)
        committed = w.progress(key)  # the writer's view: another writer may have committed
        start = committed if resume else 0
        report = IngestReport(source=key, resumed_from=start)
        stream = itertools.islice(stream, start, None if limit is None else start + limit)
        t0 = time.perf_counter()
        bar = tqdm(desc=f"ingest {Path(source).name}", unit="item", disable=not progress)
        if distributed == "ray":
            _ingest_ray(w, stream, start, key, encoder, batch_size, report, bar)
        else:
            done = start
            for shard in _shards(stream, shard_size, w):
                fresh = [(rec, h) for _, rec, h in _fresh(shard, w, report)]
                result = encode_shard(fresh, encoder, batch_size)
                ids = w.add(result.embeddings, result.items) if result.items else []
                report.added += sum(i is not None for i in ids)
                report.skipped.update(result.skipped)
                report.seen += len(shard)
                done += len(shard)
                # committed together with the items it accounts for; never behind an earlier run's
                w.set_progress(key, max(done, committed))
                w.maybe_checkpoint()
                bar.update(len(shard))
    bar.close()
    report.seconds = time.perf_counter() - t0
    return report


# ----------------------------------------------------------------------------- Ray runner


class _RayEncoder:
    """A Ray Data actor: loads the encoder once from its spec, then encodes batches of records."""

    def __init__(self, spec: str, fingerprint: str) -> None:
        from ragsc.encoders import load_encoder

        self.encoder = load_encoder(spec)
        if self.encoder.fingerprint != fingerprint:
            raise RuntimeError(f"worker's encoder {spec!r} has fingerprint {self.encoder.fingerprint}, "
                               f"expected {fingerprint}")

    def __call__(self, batch: dict) -> dict:
        records = [Record(m, t or None, u, Path(p) if p else None) for m, t, u, p in
                   zip(batch["modality"], batch["text"], batch["source_uri"], batch["path"])]
        result = encode_shard([(r, h) for r, h in zip(records, batch["hash"])], self.encoder)
        by_hash = {it.content_hash: e for it, e in zip(result.items, result.embeddings)}
        dim = self.encoder.dim
        batch["ok"] = np.array([h in by_hash for h in batch["hash"]])
        batch["embedding"] = np.stack([by_hash.get(h, np.zeros(dim, np.float32)) for h in batch["hash"]])
        return batch


def _ingest_ray(w, stream, start: int, key: str, encoder, batch_size: int, report: IngestReport, bar) -> None:
    """Encode with Ray Data ``map_batches`` (one encoder actor per CPU), merge into the KB in order.

    The driver stays the single writer: it deduplicates, hands fresh records to Ray, and adds the
    returned embeddings (in stream order) with their progress, so checkpoints and ``--resume`` work
    exactly as in the sequential runner (a batch is added in pieces that end at the checkpoints).
    """
    import json as _json

    import ray

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    committed = w.progress(key)
    records = list(stream)
    rows = [{"pos": start + i, "modality": rec.modality, "text": rec.text or "", "source_uri": rec.source_uri,
             "path": str(rec.path) if rec.path else "", "hash": h, "extra": _json.dumps(rec.extra)}
            for i, rec, h in _fresh(records, w, report)]
    total = start + len(records)
    report.seen = len(records)
    if rows:
        workers = max(1, int(ray.available_resources().get("CPU", 1)))
        ds = ray.data.from_items(rows).map_batches(
            _RayEncoder, fn_constructor_kwargs={"spec": encoder.spec, "fingerprint": encoder.fingerprint},
            batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=workers), batch_format="numpy")
        for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
            first = 0
            while first < len(batch["ok"]):
                end = _piece_end(batch["ok"], first, w.until_checkpoint())
                piece = {k: v[first:end] for k, v in batch.items()}
                ok = piece["ok"]
                items = [NewItem(m, t or None, u, h, extra=_json.loads(x)) for m, t, u, h, x, good in
                         zip(piece["modality"], piece["text"], piece["source_uri"], piece["hash"],
                             piece["extra"], ok) if good]
                if items:
                    ids = w.add(piece["embedding"][ok], items)
                    report.added += sum(i is not None for i in ids)
                bad = int((~ok).sum())
                if bad:
                    report.skipped["corrupt_or_missing_image_or_empty_text"] += bad
                w.set_progress(key, max(int(piece["pos"].max()) + 1, committed))
                w.maybe_checkpoint()
                bar.update(end - first)
                first = end
    w.set_progress(key, max(total, committed))


def _piece_end(ok: np.ndarray, first: int, room: int | None) -> int:
    """Where the piece of a batch that starts at row ``first`` ends: after its ``room``-th usable row (the
    next checkpoint), or at the end of the batch."""
    if room is None:
        return len(ok)
    reached = np.flatnonzero(np.cumsum(ok[first:]) >= room)
    return first + int(reached[0]) + 1 if len(reached) else len(ok)
