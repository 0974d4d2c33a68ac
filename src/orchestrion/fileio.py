"""File I/O shared by every area: atomic writes, and JSON reads with user-facing errors.

Atomic writes: a reader (or a kill) sees the old file or the new one, never half.

Everything orchestrion writes for a user — audio, MIDI, pictures, JSON, datasets —
goes through :func:`atomic_path`, which hands out a temporary name in the target's
folder, fsyncs what was written there and renames it over the target.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from orchestrion.errors import DataError, OrchestrionError


def current_umask() -> int:
    """The process's umask (read without changing it for longer than the call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    The temporary keeps the target's suffix, so libraries that pick a format from the
    file name (soundfile, matplotlib) write the right one. On any exception the
    temporary is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp (and writers such as safetensors, which replace the file) make owner-only files:
    # give the result the mode a plain open() would (or the old file's), after the writer is done
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~current_umask()
    try:
        yield tmp
        os.chmod(tmp, mode)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        if error.filename is not None:
            raise
        # a write into the temporary failed (full disk, quota): name the file the user asked for
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | Path, what: str, error: type[OrchestrionError]) -> Any:
    """Parse the JSON file ``path``; a missing or unreadable one raises ``error`` naming ``what``."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise error(f"{path}: {what} not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: {what} is not valid JSON ({exc})") from exc


def check_output_path(path: str | Path, *, overwrite: bool, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse an output path that would lose a user's file; return it as a ``Path``.

    The one policy for every command that writes a named file: the output may not be one
    of its own inputs (even with ``--overwrite``), may not be a folder, and an existing
    file is replaced only when the user passed ``--overwrite``. Call it before the work,
    so a refusal costs nothing.
    """
    path = Path(path)
    for source in inputs:
        source = Path(source)
        if source.exists() and path.exists() and os.path.samefile(source, path):
            raise OrchestrionError(f"{path}: is also the input; write the result to another file")
    if path.is_dir():
        raise OrchestrionError(f"{path}: is a folder; give a file name for the output")
    if path.exists() and not overwrite:
        raise OrchestrionError(f"{path}: exists; pass --overwrite to replace it")
    return path


class SkipReport:
    """Collects the files of a collection that were skipped, and why; written as ``report.jsonl``.

    A real collection always holds a few unreadable files: jobs over folders skip them,
    say so, and fail only when nothing usable is left (:meth:`require_some`).
    """

    def __init__(self) -> None:
        self.skipped: list[dict[str, str]] = []

    def skip(self, path: str | Path, reason: str) -> None:
        """Record that ``path`` was skipped because of ``reason`` (one line, no traceback).

        A reason that starts with the path itself (as :class:`OrchestrionError` messages do) loses that prefix.
        """
        reason = reason.removeprefix(f"{path}: ")
        self.skipped.append({"file": str(path), "reason": reason})

    def require_some(self, used: int, what: str) -> None:
        """Raise when ``used`` is 0: every file of the collection was skipped."""
        if used == 0:
            detail = "; ".join(f"{s['file']}: {s['reason']}" for s in self.skipped[:3])
            raise DataError(f"no usable {what} ({len(self.skipped)} skipped: {detail})")

    def write(self, path: str | Path) -> Path:
        """Write one JSON object per skipped file to ``path`` (an empty file when none was)."""
        return atomic_write_text(path, "".join(json.dumps(s) + "\n" for s in self.skipped))
