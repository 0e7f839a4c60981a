"""The receiver as a service, without HTTP: one pipeline, one worker thread, dynamic batching, the KB
operations.

:class:`ReceiverService` holds one pipeline (its encoder, KBs, decoders and LM, loaded once) and does every
piece of pipeline work in a single worker thread, in turn: decoding batches gathered by the
:class:`~ragsc.serve.batching.Batcher`, KB searches and writes. A batch may mix ``/v1/run`` requests (the
server encodes their items together, then sends each request's items through its own channel, seed and SNR)
and ``/v1/receive`` frames (each equalised on its own); every request keeps its own received symbols and
noise, and the batch's retrieval and decoders run once over all of them
(:meth:`~ragsc.pipelines.transmission.Transmission.concat`). :mod:`ragsc.serve.app` puts HTTP in front.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ragsc import checks
from ragsc.errors import InputError, KBError
from ragsc.pipelines import Pipeline
from ragsc.pipelines.transmission import Emission, Output, Transmission
from ragsc.serve.batching import Batcher, Job
from ragsc.serve.config import ServeConfig

KB_NAME = r"^[a-z][a-z0-9_-]{0,63}$"  # a KB is named, never located: no path can be formed from a name


class UnknownKB(KBError):
    """No served KB has that name (404; every other :class:`~ragsc.errors.KBError` is the server's 503)."""


@dataclass
class RunRequest:
    """``/v1/run``: items the server sends itself."""

    items: list
    snr_db: float | None
    channel: str | None
    seed: int | None = None
    baseline: bool = False
    kind: str = "run"


@dataclass
class ReceiveRequest:
    """``/v1/receive``: a decoded, checked frame."""

    emission: Emission
    kind: str = "receive"


@dataclass
class Result:
    """One request's outputs, each item's channel uses, and timings (seconds: its own encode and channel, the
    batch's retrieve and decode)."""

    outputs: list[Output]
    channel_uses: list[int]
    timings: dict[str, float] = field(default_factory=dict)
    baseline: list[dict] | None = None


class ReceiverService:
    """One pipeline behind a batcher (see the module docstring).

    Parameters
    ----------
    pipe
        The pipeline whose receiver is served (built by :meth:`from_spec`, or given: tests share one).
    config
        The server's :class:`~ragsc.serve.config.ServeConfig` (batching, queue, limits).
    """

    def __init__(self, pipe: Pipeline, config: ServeConfig | None = None) -> None:
        self.pipe, self.config = pipe, config or ServeConfig()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragsc-receiver")
        c = self.config
        self.batcher = Batcher(self._work, max_batch=c.max_batch, max_wait_ms=c.max_wait_ms,
                               max_fill_ms=c.max_fill_ms, max_queue=c.max_queue, executor=self.executor)
        self.ready = False

    @classmethod
    def from_spec(cls, spec, config: ServeConfig | None = None) -> ReceiverService:
        """Build the pipeline of ``spec`` (a shipped name, a YAML path, a dict) and serve it."""
        return cls(Pipeline.from_config(spec), config)

    # ------------------------------------------------------------------ lifecycle
    async def start(self, warm: bool = True) -> None:
        """Start the batcher, then (``warm``) load what the first request would (the LM, the KBs' sentences)
        in the worker thread; ``ready`` after."""
        self.batcher.start()
        if warm:
            await self.call(self._warm)
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        await self.batcher.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)

    def _warm(self) -> None:
        p = self.pipe
        if p.sentence_path is not None:
            p.sentence_path.decoder  # noqa: B018 (loads the LM and the codebook)
            if p.retriever is not None:
                p.kb_sentences()

    async def call(self, fn, *args):
        """Run ``fn(*args)`` in the worker thread, in turn with the batches."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # ------------------------------------------------------------------ requests
    async def submit(self, request: RunRequest | ReceiveRequest, *, rag: bool | None, size: int,
                     deadline_s: float | None = None) -> tuple[Job, asyncio.Future]:
        """Queue a request (:class:`~ragsc.serve.batching.QueueFull` when there is no room); returns its job
        and the future of its :class:`Result`."""
        rag = self.pipe.spec.decoder.rag if rag is None else bool(rag)
        if rag and self.pipe.retriever is None:
            raise InputError(f"pipeline {self.pipe.spec.name!r} has no knowledge base: rag must be false")
        deadline = time.monotonic() + (deadline_s if deadline_s is not None else self.config.deadline_s)
        job = Job(request, size, rag, deadline)
        return job, self.batcher.submit(job)

    def _work(self, payloads: list, rag: bool) -> list:
        """One batch, in the worker thread: each request to a Transmission, one receive for all of them."""
        pipe = self.pipe
        results: list = [None] * len(payloads)
        txs: dict[int, Transmission] = {}
        own: dict[int, dict] = {}
        encoded = self._encode_runs(payloads, results)
        for i, p in enumerate(payloads):
            if results[i] is not None:
                continue
            t0 = time.perf_counter()
            try:
                if p.kind == "receive":
                    txs[i] = pipe.arrive(p.emission)
                    own[i] = {"channel": time.perf_counter() - t0}
                else:
                    messages, tokens, encode_s = encoded[i]
                    txs[i] = pipe.send(messages, tokens, snr_db=p.snr_db, channel=p.channel, seed=p.seed,
                                       batch_limits=True)
                    own[i] = {"encode": encode_s, "channel": time.perf_counter() - t0}
            except Exception as exc:  # this request's problem, not its batch's
                results[i] = exc
        if not txs:
            return results
        order = sorted(txs)
        try:
            outputs = pipe.receive(Transmission.concat([txs[i] for i in order]), rag=rag)
        except Exception:
            if len(order) == 1:
                raise
            # one request broke the joint decode: decode each alone, so that only its own fails
            for i in order:
                try:
                    one = self._work([payloads[i]], rag)[0]
                except Exception as exc:
                    one = exc
                results[i] = one
            return results
        self._sentence_provenance(outputs)
        shared = {k: v for k, v in pipe.timings.items() if k in ("retrieve", "decode")}
        start = 0
        for i in order:
            n = len(txs[i])
            results[i] = Result(outputs[start:start + n], txs[i].channel_uses_per_item, {**own[i], **shared})
            start += n
            p = payloads[i]
            if p.kind == "run" and p.baseline:
                try:
                    results[i].baseline = self._baseline(txs[i], p)
                except Exception as exc:
                    results[i] = exc
        return results

    def _sentence_provenance(self, outputs: list[Output]) -> None:
        """A sentence decoded on the token link reports the KB sentences its decoder weighed (``meta["rag"]``,
        texts); ``meta["rag_sources"]`` adds where each came from (KB name and id), as retrieval hits do."""
        used = [o for o in outputs if o.kind == "text" and o.meta.get("rag")]
        if not used:
            return
        kbs = self.kbs()
        key = tuple((name, id(kb), kb.manifest.get("generation"), len(kb)) for name, kb in kbs.items())
        if getattr(self, "_sources_key", None) != key:
            sources: dict[str, dict] = {}
            for name, kb in kbs.items():
                for it in kb.items():
                    if it.modality == "text" and it.text and it.text not in sources:
                        sources[it.text] = {"id": it.id, "kb": name, "source": it.source_uri}
            self._sources, self._sources_key = sources, key
        for o in used:
            o.meta["rag_sources"] = [{"text": t, "modality": "text", "score": None,
                                      **self._sources.get(t, {"id": None, "kb": None, "source": None})}
                                     for t in o.meta["rag"]]

    def _baseline(self, tx: Transmission, p: RunRequest) -> list[dict]:
        """Each item of a ``/v1/run`` over the digital baseline at the channel uses it cost here: separate
        coding (deflate for a sentence, HEIF -- BPG's codec -- for a photo, + 5G LDPC + QAM) at its best MCS
        (:func:`~ragsc.eval.digital.best_mcs`), over the same channel and SNR."""
        from ragsc.encoders.inputs import load_image
        from ragsc.eval.digital import best_mcs
        from ragsc.serve.outputs import png_base64

        spec = self.pipe.spec
        snr = spec.channel.resolve_snr(p.snr_db)
        channel = p.channel or spec.channel.channel
        seed = spec.seed if p.seed is None else p.seed
        out = []
        for m, uses in zip(tx.messages, tx.channel_uses_per_item):
            photo = m.kind == "image"
            content = load_image(m.content, 0, spec.limits) if photo else m.content
            codec = {"image_format": "heif"} if photo else {}
            rx, mcs = best_mcs([content], spec.channel, channel, snr, seed, [uses], **codec)
            got = rx.content[0]
            out.append({"path": ("HEIF" if photo else "deflate") + " + 5G LDPC + QAM", "channel_uses": uses,
                        "mcs": f"{mcs[0]}-QAM, rate {mcs[1]:.2f}" if mcs else "none delivered the item",
                        "ok": bool(rx.ok[0]), "text": None if photo else got,
                        "image": png_base64(got) if photo else None, "questions": [], "answers": []})
        return out

    def _encode_runs(self, payloads: list, results: list) -> dict[int, tuple]:
        """The ``/v1/run`` requests' items parsed (an error fails its request alone) and encoded in one
        batch."""
        pipe = self.pipe
        parsed: dict[int, list] = {}
        for i, p in enumerate(payloads):
            if p.kind == "run":
                try:
                    pipe.link(p.channel, p.seed).snr(p.snr_db)
                    parsed[i] = pipe.messages(p.items)
                    checks.batch_items(len(parsed[i]), pipe.spec.limits)
                except Exception as exc:
                    results[i] = exc
        if not parsed:
            return {}
        order = sorted(parsed)
        messages = [m for i in order for m in parsed[i]]
        t0 = time.perf_counter()
        try:
            tokens = pipe.encode(messages)
        except Exception:  # one request's item failed to encode: encode each request alone
            out = {}
            for i in order:
                try:
                    t1 = time.perf_counter()
                    out[i] = (parsed[i], pipe.encode(parsed[i]), time.perf_counter() - t1)
                except Exception as exc:
                    results[i] = exc
            return out
        encode_s = time.perf_counter() - t0
        out, start = {}, 0
        for i in order:
            n = len(parsed[i])
            out[i] = (parsed[i], tokens.select(range(start, start + n)), encode_s * n / len(messages))
            start += n
        return out

    # ------------------------------------------------------------------ knowledge bases
    def kbs(self) -> dict:
        """The served KBs by name (their scope: ``local``, ``global``)."""
        r = self.pipe.retriever
        return dict(r.kbs) if r is not None else {}

    def kb(self, name: str):
        """The KB called ``name``; :class:`~ragsc.errors.KBError` naming the served ones otherwise."""
        import re

        if not isinstance(name, str) or not re.match(KB_NAME, name):
            raise InputError(f"{name!r} is not a KB name (lowercase letters, digits, '-' and '_'; no paths)")
        kbs = self.kbs()
        if name not in kbs:
            raise UnknownKB(f"no knowledge base {name!r} here; this server serves {sorted(kbs) or 'none'}")
        return kbs[name]

    def kb_search(self, name: str, query: str, k: int, modality: str | None) -> list:
        kb = self.kb(name)
        z = self.pipe.encoder.encode_texts([query], limits=self.pipe.spec.limits).embeddings
        return kb.search(z, k, modality=modality)[0]

    def kb_ingest(self, name: str, items: list[dict], photo_dir: Path) -> dict:
        """Add ``items`` (``{"text"}`` or ``{"image": PIL image, "caption"}``) to KB ``name`` in one commit;
        photos are kept under ``photo_dir`` (content-addressed) so the receiver can use them as side
        information. Returns the ids (``None`` for duplicates)."""
        from ragsc.kb.items import NewItem, content_hash

        kb = self.kb(name)
        enc, lim = self.pipe.encoder, self.pipe.spec.limits
        texts = [(j, it["text"]) for j, it in enumerate(items) if "text" in it]
        photos = [(j, it) for j, it in enumerate(items) if "image" in it]
        new: list = [None] * len(items)
        rows: list = [None] * len(items)
        if texts:
            z = enc.encode_texts([t for _, t in texts], limits=lim).embeddings
            for (j, t), row in zip(texts, z):
                new[j], rows[j] = NewItem("text", t, source_uri="api:text"), row
        if photos:
            import io

            z = enc.encode_images([it["image"] for _, it in photos], limits=lim).embeddings
            photo_dir.mkdir(parents=True, exist_ok=True)
            for (j, it), row in zip(photos, z):
                buf = io.BytesIO()
                it["image"].convert("RGB").save(buf, format="PNG")
                digest = hashlib.sha256(buf.getvalue()).hexdigest()
                path = photo_dir / f"{digest}.png"
                if not path.exists():  # written whole, then renamed: a crash leaves no half photo
                    tmp = path.with_suffix(".tmp")
                    tmp.write_bytes(buf.getvalue())
                    tmp.replace(path)
                new[j] = NewItem("image", it.get("caption"), source_uri=str(path),
                                 content_hash=content_hash("image", buf.getvalue()))
                rows[j] = row
        import torch

        ids = kb.add(torch.stack(rows), new)
        return {"ids": ids, "added": sum(i is not None for i in ids), "items": len(kb)}

    def kb_delete(self, name: str, ids: list[int]) -> dict:
        kb = self.kb(name)
        return {"deleted": kb.delete(ids), "items": len(kb)}
