"""Atomic file writes: a crash or interrupt never leaves a half-written output."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> str:
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it over `path`."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=os.path.splitext(path)[1], prefix=".tmp-")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_json(path: str | os.PathLike, obj: object) -> str:
    def dump(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2)

    return atomic_write(path, dump)


def write_text(path: str | os.PathLike, text: str) -> str:
    """A UTF-8 text file, written atomically."""

    def dump(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, dump)


def write_npz(path: str | os.PathLike, **arrays: object) -> str:
    """A compressed .npz of the named arrays, written atomically."""
    import numpy as np

    def dump(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)

    return atomic_write(path, dump)
