"""``ragsc kb``: knowledge bases (create, ingest, search, stats, delete, export, shard) over
:mod:`ragsc.kb`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ragsc.report import table

app = typer.Typer(help="Knowledge bases: create, ingest, search, stats, delete, export, shard.",
                  no_args_is_help=True)


def kb_path(name: str) -> Path:
    """A bare NAME lives in RAGSC_HOME/kb/NAME; anything with a '/' is a path. '..' is refused."""
    from ragsc.kb.manifest import resolve_path

    return resolve_path(name)


@app.command("create")
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


@app.command("ingest")
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


@app.command("search")
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


@app.command("stats")
def kb_stats(name: str, verify: bool = typer.Option(False, help="Also compare the files with the manifest's "
                                                                 "checksums (reads them whole).")) -> None:
    """Counts, index type, size on disk, bytes per item (after SQLite's integrity check of the metadata);
    ``verified`` says whether the checksums were compared."""
    from ragsc.kb import KnowledgeBase

    stats = KnowledgeBase.open(kb_path(name)).stats(verify=verify)
    typer.echo(json.dumps(stats, indent=2))
    if not verify:
        typer.echo("note: checksums not verified (SQLite's page check alone misses bytes changed inside a "
                   "record); run with --verify to compare the files with the manifest's checksums", err=True)


@app.command("delete")
def kb_delete(name: str, ids: list[int]) -> None:
    """Delete items by id (one commit)."""
    from ragsc.kb import KnowledgeBase

    n = KnowledgeBase.open(kb_path(name)).delete(ids)
    typer.echo(f"deleted {n} of {len(ids)} ids")


@app.command("export")
def kb_export(name: str, out: Path = typer.Option(..., help="JSONL file to write (metadata, one item per "
                                                              "line).")) -> None:
    """Export metadata as JSONL (and vectors as OUT.npy when the index stores them exactly)."""
    from ragsc.kb import KnowledgeBase
    from ragsc.targets import check_file

    check_file(out, "--out")  # before the KB is opened
    check_file(out.with_name(out.name + ".npy"), "--out's vectors file")
    kb = KnowledgeBase.open(kb_path(name))
    n = kb.export(out)
    typer.echo(f"exported {n} items to {out}")


@app.command("shard")
def kb_shard(name: str, shards: int = typer.Option(..., help="How many shard KBs to deal the items into."),
             out: Path = typer.Option(..., help="A new or empty folder: OUT/shard-000, ...")) -> None:
    """Split a KB into shard KBs (vectors copied exactly), searched scatter-gather by
    ragsc.kb.shards.ShardedKB on threads or on Ray actors."""
    from ragsc.kb import KnowledgeBase
    from ragsc.kb.shards import split
    from ragsc.targets import check_folder

    check_folder(out, "--out")  # before the KB is opened
    kb = KnowledgeBase.open(kb_path(name))
    paths = split(kb, out, shards)
    sizes = [len(KnowledgeBase.open(p)) for p in paths]
    typer.echo(f"split {len(kb)} items of {name} into {len(paths)} shards under {out}: {sizes}")
