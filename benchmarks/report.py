"""The Markdown form of a benchmarks/run.py report (its JSON holds every field; this shows the comparison).

No JAX or torch import here.
"""

from __future__ import annotations

from typing import Any

from benchmarks.cases import BASELINE_KIND, REPLACES

COLUMNS = (
    "case", "side", "device", "versions", "compile s", "step s (median)", "step s (min)", "steps/s", "clips/s",
    "peak RSS MB", "XLA GFLOP/s", "% of matmul peak", "JAX / this", "jit cache",
)  # fmt: skip


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:.0f}"


def _versions(side: str, case: str, versions: dict[str, str]) -> str:
    if side == "jax":
        return f"jax {versions['jax']}, jaxlib {versions['jaxlib']}"
    uses_pyro = side == "original" and case.startswith("vdsm")
    return f"torch {versions['torch']}" + (f", pyro {versions['pyro-ppl']}" if uses_pyro else "")


def _ratio_text(row: dict[str, Any]) -> str:
    if "over_baselines" in row:  # a JAX-only case against the baselines of the case it replaces
        parts = [
            f"{_num(ratio)} of {BASELINE_KIND[side]} {REPLACES[row['case']]}"
            for side, ratio in row["over_baselines"].items()
        ]
        return "; ".join(parts) or "—"
    return _num(row.get("jax_over_this"))


def _row(row: dict[str, Any], report: dict[str, Any]) -> str:
    side, case = row["side"], row["case"]
    head = [case, BASELINE_KIND[side], row.get("device", "—"), _versions(side, case, report["versions"])]
    if "error" in row:
        return "| " + " | ".join([*head, f"failed: {row['error_line']}", *["—"] * (len(COLUMNS) - 5)]) + " |"
    peak = report["matmul_peak_gflops"].get("jax")
    gflops = row.get("gflops_per_s")
    cache = row.get("jit_cache_entries")
    if cache is None:
        cache_text = "—"
    else:
        cache_text = ", ".join(f"{name} {n}" for name, n in cache.items())
        cache_text += " **recompiled**" if row["recompiled"] else ""
    cells = [
        *head,
        _num(row.get("compile_s")),
        _num(row["step_s"]),
        _num(row["min_s"]),
        _num(row["steps_per_s"]),
        _num(row["clips_per_s"]),
        _num(row["peak_rss_mb"], 4),
        _num(gflops),
        _num(100 * gflops / peak if gflops is not None and peak else None, 2),
        _ratio_text(row),
        cache_text,
    ]
    return "| " + " | ".join(cells) + " |"


def _peaks(report: dict[str, Any]) -> list[str]:
    lines = []
    for probe in report["matmul"]:
        if "error" in probe:
            lines.append(f"- {probe['library']} matmul probe ({probe['when']}): failed: {probe['error_line']}")
        else:
            lines.append(
                f"- {probe['library']} 2048² float32 matmul ({probe['when']}, {probe['device']}): best "
                f"{probe['best_gflops']:.0f}, median {probe['median_gflops']:.0f} GFLOP/s"
            )
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table, with the machine, the matmul peaks and the notes under it."""
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *(_row(row, report) for row in report["results"]),
        "",
        f"Machine: {report['machine']} ({report['cpu_count']} CPUs), Python {report['python']}; "
        f"{report['steps']} timed run(s) after {report['warmup']} warm-up run(s) per case"
        + (f"; {report['jobs']} cases at a time (timings disturb each other)" if report["jobs"] > 1 else "")
        + (f"; XLA_FLAGS={report['xla_flags']}" if report["xla_flags"] else "")
        + (f"; JAX conv_impl {report['conv_impl']}" if report["conv_impl"] != "auto" else "")
        + ("; a persistent compilation cache (compile s may be cache reads)" if report["compilation_cache"] else "")
        + ".",
        *_peaks(report),
        "- % of matmul peak: XLA GFLOP/s over the best JAX matmul probe of this run. JAX / this: the JAX row's "
        "median step over this row's.",
    ]
    uncounted = sorted({note for row in report["results"] for note in row.get("uncounted_loops", ())})
    lines += [f"- FLOPs: {note}" for note in uncounted]
    return "\n".join(lines) + "\n"
