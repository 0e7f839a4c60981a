"""Opening one committed generation of a knowledge base for reading: its files held open, its FAISS index
and its SQLite metadata, checked against the manifest.

A generation's files never change once committed, so readers never lock: :func:`open_latest` opens the
generation the manifest names, keeping descriptors of its files (:class:`GenerationFiles`), so the handle
that serves it (:class:`~ragsc.kb.store.KnowledgeBase`) can go on reading, sizing and verifying it after
later commits retire it. A generation retired while it was being opened is not damage: the manifest is
read again (a few times). Opening cross-checks the row counts of the metadata, the index and the manifest
(cheap); a damaged file is a :class:`~ragsc.errors.KBError`, never a raw SQLite or FAISS error. A data file
that is a link (to another KB's files, say) is refused, as a linked generation folder is.

:meth:`GenerationFiles.verify` compares the files with the manifest's SHA-256 checksums: a writer runs it
on the generation it builds on (so damage is never copied into a new generation under fresh checksums),
``ragsc kb stats --verify`` on the one it serves.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import weakref
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import faiss

from ragsc.errors import KBError
from ragsc.kb.manifest import DATA_FILES, generation_dir, read_manifest, sha256_fd

_OPEN_ATTEMPTS = 5  # manifests read while commits keep retiring the generation being opened


class _Retired(Exception):
    """The generation being opened was retired by later commits meanwhile: read the manifest again."""


class GenerationFiles:
    """Read-only descriptors of one generation's files, held for a handle's lifetime.

    POSIX keeps an unlinked file's data while a descriptor is open, so a handle can still report
    the size of, and verify, the generation it serves after a writer's clean-up removed its folder.

    Raises
    ------
    KBError
        A data file is a link (the data of another knowledge base could be served under this one's name).
    OSError
        A data file cannot be opened (missing: the caller tells damage from a retired generation).
    """

    def __init__(self, gen: Path) -> None:
        self.gen = gen
        self.fds: dict[str, int] = {}
        try:
            for name in DATA_FILES:
                self.fds[name] = _open_no_link(gen, name)
        except BaseException:
            _close_fds(list(self.fds.values()))
            raise
        self._finalizer = weakref.finalize(self, _close_fds, list(self.fds.values()))

    def size(self) -> int:
        return sum(os.fstat(fd).st_size for fd in self.fds.values())

    def sha256(self, name: str) -> str:
        return sha256_fd(self.fds[name])

    def verify(self, checksums: dict[str, str], kb: Path) -> None:
        """Compare every file with its SHA-256 in ``checksums`` (the manifest's); reads the files whole.

        Raises
        ------
        KBError
            A file's bytes changed after they were committed; the message names the file and generation.
        """
        for name, digest in checksums.items():
            if self.sha256(name) != digest:
                raise KBError(f"knowledge base {kb} is damaged: {name} does not match its checksum "
                              f"(generation {self.gen.name}): its bytes changed after they were committed; "
                              "restore the knowledge base from a backup or rebuild it")

    def read_index(self) -> faiss.Index:
        """The FAISS index, read through the descriptor (the file that was opened, and verified)."""
        fd, offset = self.fds["index.faiss"], 0

        def read(n: int) -> bytes:
            nonlocal offset
            chunk = os.pread(fd, n, offset)
            offset += len(chunk)
            return chunk

        return faiss.read_index(faiss.PyCallbackIOReader(read))

    def copy(self, name: str, dest: Path) -> None:
        """Copy file ``name`` (through its descriptor) to ``dest``, a new file."""
        fd, offset = self.fds[name], 0
        with open(dest, "xb") as out:
            while chunk := os.pread(fd, 1 << 20, offset):
                out.write(chunk)
                offset += len(chunk)

    def close(self) -> None:
        self._finalizer()


def _close_fds(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _open_no_link(gen: Path, name: str) -> int:
    try:
        return os.open(gen / name, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
    raise KBError(f"knowledge base {gen.parent}: {gen.name}/{name} is a link, not a file of this knowledge "
                  "base; its generations must hold their own files (restore it or rebuild it)")


@dataclass
class Generation:
    """One committed generation, open: its manifest, index, metadata connection and files; ``where`` names
    it in error messages."""

    manifest: dict
    index: faiss.Index
    db: sqlite3.Connection
    files: GenerationFiles
    where: str


def open_latest(path: Path, encoder=None) -> Generation:
    """The generation the manifest of the KB at ``path`` names, open; with ``encoder``, refuse a KB built by
    another one (:func:`check_encoder`).

    Raises
    ------
    KBError
        The KB is missing, damaged or inconsistent, or kept changing while it was being opened.
    """
    for _ in range(_OPEN_ATTEMPTS):
        manifest = read_manifest(path)
        if encoder is not None:
            check_encoder(path, manifest, encoder)
        try:
            return _open(path, manifest)
        except _Retired:
            continue
    raise KBError(f"knowledge base {path} changed {_OPEN_ATTEMPTS} times while it was being opened; "
                  "try again")


def _open(path: Path, manifest: dict) -> Generation:
    """Open the generation ``manifest`` names (raises :class:`_Retired` if it was removed meanwhile)."""
    name = manifest["generation"]
    gen = generation_dir(path, name)
    where = f"knowledge base {path} (generation {name})"
    files = None
    try:
        files = GenerationFiles(gen)  # first: from now on the files cannot go away under us
        index = files.read_index()
        # immutable: committed generations never change, so readers need no locks
        db = sqlite3.connect(f"file:{quote(str(gen / 'meta.sqlite'))}?mode=ro&immutable=1", uri=True,
                             check_same_thread=False)
        n_meta = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    except KBError:  # a linked data file (GenerationFiles closed what it had opened)
        raise
    except (OSError, RuntimeError, sqlite3.Error) as exc:
        if files is not None:
            files.close()
        if _retired(path, name):
            raise _Retired from None
        raise KBError(f"{where} is damaged: {exc}") from None
    if not (index.ntotal == n_meta == manifest["counts"]["items"]):
        files.close()
        raise KBError(f"knowledge base {path} is inconsistent: index has {index.ntotal} vectors, "
                      f"metadata {n_meta} rows, manifest {manifest['counts']['items']}")
    return Generation(manifest, index, db, files, where)


def _retired(path: Path, generation: str) -> bool:
    """Whether the manifest has moved past ``generation`` (a commit retired it, rather than damage)."""
    try:
        return read_manifest(path)["generation"] != generation
    except KBError:
        return False


def check_encoder(path: Path, manifest: dict, encoder) -> None:
    """Raise :class:`KBError` naming both encoders unless ``encoder`` built the KB ``manifest`` describes."""
    from ragsc.encoders.base import serves

    fp = manifest["encoder"]["fingerprint"]
    if not serves(encoder, fp):
        raise KBError(f"knowledge base {path} was built by encoder {manifest['encoder']['spec']!r} "
                      f"(fingerprint {fp}); the encoder given is {encoder.spec!r} (fingerprint "
                      f"{encoder.fingerprint}). Rebuild the KB or use the same encoder.")
    if int(encoder.dim) != int(manifest["dim"]):  # e.g. a student whose config claims the teacher wrongly
        raise KBError(f"knowledge base {path} holds {manifest['dim']}-d vectors; the encoder given, "
                      f"{encoder.spec!r}, makes {encoder.dim}-d ones")
