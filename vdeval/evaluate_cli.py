"""The command line both models' evaluate commands share.

    python -m vdsm_jax.evaluate --workdir RUN --judge J [--data_dir D] [--seeds 0,1,2] [--out DIR]
    python -m drnet_jax.evaluate --workdir RUN --judge J [--data_dir D] [--seeds 0,1,2] [--out DIR]

Writes metrics.json, metrics.md and the plots into --out (default <RUN>/evaluation) and prints metrics.md.
With --curve, every checkpoint the run kept is evaluated instead, and the accuracy-vs-training-time curve is
written into --out (default <RUN>/evaluation/curve; vdeval.curve).
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import app, flags

from vdcore import cli
from vdcore.host_memory import keep_freed_memory
from vdeval.curve import accuracy_curve, curve_table
from vdeval.evaluation import EvaluateFn


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "The run to evaluate: a workdir (a 'both' run's stage2/ is used) or a stage.")
    flags.DEFINE_string("judge", None, "The judge's workdir (python -m vdeval.judge train ...).")
    flags.DEFINE_string("data_dir", None, "Where the run's dataset is built (default: the run config's data_dir).")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of the repeats (mean ± std over them).")
    flags.register_validator(
        "seeds", _are_seeds, message="--seeds must be one or more integers separated by commas, e.g. 0,1,2"
    )
    flags.DEFINE_integer(
        "max_clips", 400, "Test clips judged per mode and seed (a seeded choice when more).", lower_bound=1
    )
    flags.DEFINE_integer("max_probe_clips", 1000, "Train clips whose codes fit the linear probes.", lower_bound=1)
    flags.DEFINE_integer(
        "horizon", 100, "DRNet: prediction steps judged (PSNR / SSIM where ground truth exists).", lower_bound=1
    )
    flags.DEFINE_string("out", None, "Output folder (default <workdir>/evaluation, with --curve .../curve).")
    flags.DEFINE_bool(
        "curve",
        False,
        "Evaluate every checkpoint the run kept (its config's keep_period) and write accuracy against training "
        "time (curve.json, curve.png) instead of the report of the newest checkpoint.",
    )
    flags.mark_flags_as_required(["workdir", "judge"])


def _are_seeds(values: list[str]) -> bool:
    """Whether --seeds is a non-empty list of integers (checked when the flags are parsed, not at the first use)."""
    return bool(values) and all(value.strip().lstrip("-").isdigit() for value in values)


def run(evaluate: EvaluateFn, model_flags: Sequence[str] = ()) -> None:
    """Run the command: `evaluate` gets the shared settings and, by name, the flags in model_flags (one model's
    own, defined by its module before this call)."""

    def main(argv: list[str]) -> None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {argv[1:]}")
        keep_freed_memory()
        f = flags.FLAGS
        settings = {
            "data_dir": f.data_dir,
            "seeds": [int(s) for s in f.seeds],
            "max_clips": f.max_clips,
            "max_probe_clips": f.max_probe_clips,
            "horizon": f.horizon,
            "out": f.out,
            **{name: f[name].value for name in model_flags},
        }
        if f.curve:
            result = accuracy_curve(evaluate, f.workdir, f.judge, **settings)
            print(curve_table(result["curve"]))
        else:
            result = evaluate(f.workdir, f.judge, **settings)
            print(result["markdown"])
        print(f"wrote {', '.join(result['paths'].values())}")

    app.run(cli.report_input_errors(main))
