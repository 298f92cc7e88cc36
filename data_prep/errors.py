"""Errors and bad-sample accounting shared by every dataset builder and loader."""

from __future__ import annotations

import collections
import os
import zipfile
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
        if manual_dir is None:
            where = "no manual_dir was given"
        elif not os.path.isdir(manual_dir):
            where = f"manual_dir={manual_dir!s} is not a folder"
        else:
            where = f"they are not in manual_dir={manual_dir!s}"
        super().__init__(
            f"Dataset '{dataset}' needs manually downloaded files; {where}.\n"
            f"Missing:\n{listing}\n\nHow to obtain them:\n{instructions.strip()}"
        )


class UnknownDatasetError(ValueError):
    """A dataset or builder config name that is not registered; the message lists the known ones."""


class DatasetNotBuiltError(FileNotFoundError):
    """A dataset (config) has not been prepared in data_dir; the message gives the build command."""


# The errors that mean a command's input is wrong (a file, a folder, a name) rather than the code: commands print
# their message alone, without a traceback.
INPUT_ERRORS: tuple[type[Exception], ...] = (
    DataError,
    MissingManualFilesError,
    UnknownDatasetError,
    DatasetNotBuiltError,
)


def check_npz(path: str | os.PathLike, problem: str) -> None:
    """DataError `problem` unless `path` is a zip archive, as every .npz file is: np.load would read any other file
    as a pickle (running its code where pickles are allowed) or call a text file 'pickled data'."""
    if not zipfile.is_zipfile(path):
        raise DataError(path, f"{problem}: not a zip archive, as every .npz file is")


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
