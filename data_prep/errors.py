"""Errors and bad-sample accounting shared by every dataset builder and loader."""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence


class DataError(ValueError):
    """Bad input data: the message names the file, the index and what was expected."""

    def __init__(self, path: str | os.PathLike | None, problem: str, index: int | str | None = None):
        self.path = None if path is None else os.fspath(path)
        self.index = index
        self.problem = problem
        where = self.path if self.path is not None else "<input>"
        if index is not None:
            where = f"{where} [index {index}]"
        super().__init__(f"{where}: {problem}")


class MissingManualFilesError(FileNotFoundError):
    """Raised when a manual-download dataset's files are not in `manual_dir`."""

    def __init__(self, dataset: str, manual_dir: str | os.PathLike | None, missing: Sequence[str], instructions: str):
        self.missing = list(missing)
        listing = "\n".join(f"  - {name}" for name in self.missing)
        super().__init__(
            f"Dataset '{dataset}' needs files that are not in manual_dir={manual_dir!s}.\n"
            f"Missing:\n{listing}\n\nHow to obtain them:\n{instructions.strip()}"
        )


BAD_SAMPLE_POLICIES = ("error", "skip")


class BadSampleTracker:
    """Applies a builder config's `on_bad_sample` policy and counts what was skipped.

    With policy "error" every problem raises `DataError`; with "skip" the problem is
    counted (per reason) and recorded so the build can report it. Nothing is ever
    dropped silently.
    """

    def __init__(self, policy: str):
        if policy not in BAD_SAMPLE_POLICIES:
            raise ValueError(f"on_bad_sample must be one of {BAD_SAMPLE_POLICIES}, got {policy!r}")
        self.policy = policy
        self.skipped: list[str] = []
        self.counts: collections.Counter[str] = collections.Counter()

    def bad(self, error: DataError, reason: str = "bad_sample") -> None:
        """Raise `error`, or record it as a skip when the policy allows."""
        if self.policy == "error":
            raise error
        self.skipped.append(str(error))
        self.counts[reason] += 1

    def summary(self) -> dict:
        return {
            "skipped_total": len(self.skipped),
            "skipped_by_reason": dict(self.counts),
            "skipped": self.skipped[:100],
        }
