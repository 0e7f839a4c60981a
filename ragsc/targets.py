"""Where a command may write: the one check of every output path, made before any work.

Two kinds of target, two functions:

* :func:`check_file`: a file written whole and renamed into place (``kb export --out``). A missing path in
  an existing folder, or a regular file (which is replaced). Never a folder, a device node, a FIFO, a
  socket or a symbolic link (``os.replace`` would put a plain file where the node or the link was), nor a
  path under a file.
* :func:`check_folder`: a folder a command fills (a saved model, a teacher store, a run's results). A
  missing path (created with its parents) or an empty folder; a folder that holds something only where
  the caller's ``reuse`` rule accepts it (a saved model to replace, a store to resume, a previous run's
  results). Never a file or another non-folder, a symbolic link, a path under a file, the current folder
  or the filesystem root.

Both raise :class:`~ragsc.errors.InputError` before anything is loaded, computed or written, with one
message style: ``<option> <path>: <what is wrong>; <what to do>`` (``<path>: ...`` when no option named
it), e.g. ``--out /dev/null: is a character device, not a regular file; name a new file or a file to
replace``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from ragsc.errors import InputError

__all__ = ["check_file", "check_folder", "describe", "only_files"]

NEW_FILE = "name a new file or a file to replace"
NEW_FOLDER = "name a new or empty folder"


def describe(path: str | os.PathLike) -> str:
    """What lies at ``path``, not following a symbolic link: ``"a file"``, ``"a folder"``, ``"a FIFO"``,
    ``"a character device"``, ... (``"nothing"`` when the path is missing)."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "nothing"
    for test, what in ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return "a special file"


def _label(raw: str, option: str | None) -> str:
    shown = raw if raw.strip() else repr(raw)
    return f"{option} {shown}" if option else shown


def _common(path: str | os.PathLike, option: str | None, remedy: str) -> tuple[Path, str]:
    """The checks both kinds share: an empty path, the current folder, the root, a symbolic link, a path
    under a file. Returns the path and its label."""
    raw = os.fspath(path)
    label = _label(raw, option)
    if not raw.strip():
        raise InputError(f"{label}: is an empty path; {remedy}")
    p = Path(raw)
    if p.is_symlink():  # replaced by what is written, not written through
        raise InputError(f"{label}: is a symbolic link (to {os.readlink(p)}); {remedy} (the link's target, "
                         "if that is what you mean)")
    real = Path(os.path.realpath(p))
    if real == Path(os.path.realpath(os.curdir)):
        raise InputError(f"{label}: is the current folder; {remedy}")
    if real == Path(real.anchor):
        raise InputError(f"{label}: is the filesystem root; {remedy}")
    for parent in Path(os.path.abspath(p)).parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{label}: lies under {parent}, which is {describe(parent)}, not a folder; "
                                 f"{remedy}")
            break
    return p, label


def check_file(path: str | os.PathLike, option: str | None = None) -> Path:
    """``path`` as a :class:`~pathlib.Path` if a file may be written there whole (and renamed into place).

    Parameters
    ----------
    path
        The target file.
    option
        The option that named it (``"--out"``), for the message; None for a library call.

    Returns
    -------
    Path
        ``path``: missing, in an existing folder, or a regular file (which the caller replaces).

    Raises
    ------
    InputError
        ``path`` is empty, the current folder or the root; a folder, a device node, a FIFO, a socket or a
        symbolic link (to anything); under a file; or in a folder that does not exist.
    """
    p, label = _common(path, option, NEW_FILE)
    what = describe(p)
    if what == "a folder":
        raise InputError(f"{label}: is a folder, not a file; {NEW_FILE}")
    if what not in ("nothing", "a file"):
        raise InputError(f"{label}: is {what}, not a regular file; {NEW_FILE}")
    if not p.parent.is_dir():
        raise InputError(f"{label}: its folder {p.parent} does not exist; create it, or name a file in an "
                         "existing folder")
    return p


def check_folder(path: str | os.PathLike, option: str | None = None, *,
                 reuse: Callable[[Path], str | None] | None = None) -> Path:
    """``path`` as a :class:`~pathlib.Path` if a command may write its folder there.

    Parameters
    ----------
    path
        The target folder.
    option
        The option that named it (``"--out"``), for the message; None for a library call.
    reuse
        Where an existing folder that holds something may be written into: called with the folder, it
        returns None to accept it (a saved model to replace, a store to resume, a previous run's results),
        else the rest of the message (``"holds other files, not a teacher store; name a new or empty
        folder"``). Default: every folder that holds something is refused.

    Returns
    -------
    Path
        ``path``: missing (the caller creates it with its parents), an empty folder, or one ``reuse``
        accepts.

    Raises
    ------
    InputError
        ``path`` is empty, the current folder or the root; a file or another non-folder; a symbolic link;
        under a file; or a folder that holds something ``reuse`` does not accept.
    """
    p, label = _common(path, option, NEW_FOLDER)
    what = describe(p)
    if what not in ("nothing", "a folder"):
        raise InputError(f"{label}: is {what}, not a folder; {NEW_FOLDER}")
    if what == "a folder":
        try:
            held = next(os.scandir(p), None) is not None
        except OSError as exc:
            raise InputError(f"{label}: cannot be read ({exc.strerror}); {NEW_FOLDER}") from None
        if held:
            reason = reuse(p) if reuse is not None else f"is not empty; {NEW_FOLDER}"
            if reason is not None:
                raise InputError(f"{label}: {reason}")
    return p


def only_files(*patterns: str, what: str) -> Callable[[Path], str | None]:
    """A ``reuse`` rule for :func:`check_folder`: a folder that holds nothing but regular files whose names
    match ``patterns`` (``fnmatch``: ``"eval.csv"``, ``"eval_*.png"``), ``what`` a previous run wrote.

    Returns
    -------
    callable
        ``folder -> None`` (accepted) or the message's rest, naming one entry that does not belong.
    """
    from fnmatch import fnmatchcase

    def rule(folder: Path) -> str | None:
        for entry in sorted(folder.iterdir()):
            kind = describe(entry)
            if kind != "a file" or not any(fnmatchcase(entry.name, pat) for pat in patterns):
                return f"holds {entry.name} ({kind}): only {what} may be replaced there; {NEW_FOLDER}"
        return None

    return rule


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` whole: into a temporary file beside it, then renamed into place (a crash
    leaves the old file or none, never half a file). Check the target with :func:`check_file` first."""
    p = Path(path)
    tmp = p.parent / f".{p.name}.tmp-{os.getpid()}"
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p
