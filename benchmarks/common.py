"""Plumbing the step benchmarks share: the host-memory flag, the machine fields and the JSON report.

No JAX import here: benchmarks/vdsm_step.py sets XLA_FLAGS before JAX starts.
"""

from __future__ import annotations

import argparse
import os
import platform
from typing import Any

from vdcore.files import write_json
from vdcore.host_memory import keep_freed_memory


def add_host_memory_flag(parser: argparse.ArgumentParser) -> None:
    """``--glibc_malloc_defaults``: time the steps without vdcore.host_memory.keep_freed_memory."""
    parser.add_argument(
        "--glibc_malloc_defaults",
        action="store_true",
        help="do not apply vdcore.host_memory.keep_freed_memory (the training CLI applies it by default)",
    )


def apply_host_memory_flag(args: argparse.Namespace) -> None:
    """Keep freed memory unless ``--glibc_malloc_defaults``; records the outcome as ``args.keep_freed_memory``.

    Call before the first JAX computation (threads pick their malloc arena on their first allocation).
    """
    args.keep_freed_memory = False if args.glibc_malloc_defaults else keep_freed_memory()


def machine_fields() -> dict[str, Any]:
    """What every report records of the machine it ran on."""
    return {"machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}


def write_report(out: str, report: dict[str, Any]) -> dict[str, Any]:
    """Write ``report`` as JSON to ``out`` (nothing for '') and say where; returns the report."""
    if out:
        print(f"wrote {write_json(out, report)}")
    return report
