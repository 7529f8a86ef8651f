"""Writes that survive a crash at any instant: atomic files and atomically swapped directories.

Standard library only. A directory ``D`` is replaced in steps that each leave a complete copy findable:

1. the new content is written into ``.D.tmp`` and every file and the folder are fsynced (a leftover
   ``.D.tmp`` is incomplete by definition and is deleted);
2. ``.D.tmp`` is renamed ``.D.new`` (from here on the new copy is complete and is the newest);
3. the old ``D`` is renamed ``.D.old``, then ``.D.new`` is renamed ``D``; the parent folder is fsynced after
   every rename;
4. ``.D.old`` is deleted.

Whatever instant the process dies at, :func:`resolve_dir` finds the newest complete copy (``.D.new`` if
present, else ``D``) and :func:`recover_dir` finishes the interrupted swap with the same renames.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a file's content to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (new names, renames) to the disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # Windows: folders cannot be opened; NTFS journals renames itself
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(path: str | os.PathLike) -> None:
    """fsync every file under ``path``, then every folder (deepest first)."""
    folders = []
    for base, _, files in os.walk(path):
        folders.append(base)
        for name in files:
            fsync_file(os.path.join(base, name))
    for base in reversed(folders):
        fsync_dir(base)


def _new_temporary(folder: Path, name: str) -> tuple[int, str]:
    """A new, uniquely named temporary file for ``name`` in ``folder``, and its descriptor. It is created as
    ``open()`` creates files (``0o666`` less the umask, applied by the system), where ``tempfile.mkstemp`` makes
    them owner-only."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: no free temporary name for {name!r}")


def write_atomic(path: str | os.PathLike, data: bytes | Callable[[str], None]) -> Path:
    """Write ``path`` through a temporary file in the same folder, fsynced, then renamed over it: a reader
    (or a crash) sees the old content or the new one, never a mixture. ``data`` is the bytes, or a
    function that writes the file at the path it is given. The file keeps the permissions of the one it
    replaces; a new one gets those of a plain ``open()``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode: int | None = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    fd, tmp = _new_temporary(path.parent, path.name)
    try:
        if callable(data):
            os.close(fd)
            data(tmp)
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def _hidden(final: Path, tag: str) -> Path:
    return final.with_name(f".{final.name}.{tag}")


def resolve_dir(final: str | os.PathLike) -> Path | None:
    """The newest complete copy of ``final`` after any interruption, else ``None``: ``.D.new``, else ``D``,
    else ``.D.old`` (alone only after an interruption of an older version's swap, which renamed ``D`` away
    before moving the new copy in). Reads only; safe to call from several processes."""
    final = Path(final)
    for candidate in (_hidden(final, "new"), final, _hidden(final, "old")):
        if candidate.is_dir():
            return candidate
    return None


def leftovers(final: str | os.PathLike) -> list[Path]:
    """``D`` and its hidden working copies that exist."""
    final = Path(final)
    return [p for p in (final, *(_hidden(final, t) for t in ("tmp", "new", "old"))) if p.exists()]


def recover_dir(final: str | os.PathLike) -> Path | None:
    """Finish a swap that was interrupted: the newest complete copy ends up at ``final``, incomplete and
    superseded copies are deleted. Returns ``final`` if a complete copy exists, else ``None``."""
    final = Path(final)
    new, old, tmp = _hidden(final, "new"), _hidden(final, "old"), _hidden(final, "tmp")
    if new.is_dir():
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
            fsync_dir(final.parent)
        os.rename(new, final)
        fsync_dir(final.parent)
    elif not final.exists() and old.is_dir():
        os.rename(old, final)
        fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return final if final.is_dir() else None


def replace_dir(final: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Replace the folder ``final`` with one that ``fill(folder)`` writes, crash-safe at every instant (see
    the module docstring). If ``fill`` raises, ``final`` is left as it was."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(final)
    tmp, new, old = _hidden(final, "tmp"), _hidden(final, "new"), _hidden(final, "old")
    os.mkdir(tmp)
    try:
        fill(tmp)
        fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.rename(tmp, new)
    fsync_dir(final.parent)
    if final.exists():
        os.rename(final, old)
        fsync_dir(final.parent)
    os.rename(new, final)
    fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)
    return final
