"""Stopping a run at a step boundary, with a checkpoint, when the scheduler asks (SIGTERM) or the user does (SIGINT).

Schedulers and preemptible VMs send SIGTERM and kill the process some seconds later; by default Python dies at
once (exit 143) and the work since the last periodic checkpoint is lost. Inside `stop_on_signals()` the first
SIGTERM or SIGINT only records the request: the training loop finishes its current step, writes a checkpoint,
and returns; the command then exits 0 and rerunning it resumes from that checkpoint. A second signal of the
same kind acts as it would without this module (a second Ctrl-C raises KeyboardInterrupt at once).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from absl import logging

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Which stop signal arrived (`requested`: its name, e.g. 'SIGTERM', or None)."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.requested = self.requested or name
        logging.warning("%s received: stopping after the current step with a checkpoint", name)
        previous = self._previous.get(signum)
        signal.signal(signum, signal.SIG_DFL if previous is None else previous)  # a second one acts as usual

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """A StopRequest that SIGTERM / SIGINT set while the block runs (signals can only be caught in the main
    thread; elsewhere nothing is installed and `requested` stays None)."""
    request = StopRequest()
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        request.install()
    try:
        yield request
    finally:
        if in_main_thread:
            request.uninstall()
