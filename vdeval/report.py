"""An evaluation's files: metrics.json (everything), metrics.md (the papers' layout and the full tables), plots.

The metrics dict an evaluate command builds (vdsm_jax.evaluate, drnet_jax.evaluate):

    model, run, stage, dataset, dataset_config, seeds, clips, judge {workdir, report, dataset_config},
    modes {name: {description, identity_from, dynamics_from}},
    results {mode: {accuracy {head (and ALL_IDENTITY with >= 2 identity heads): mean/std}, scores {head: {inception_score, ...}}, frechet}},
    probes {code: {head: {accuracy, chance, uniform_chance}}},
    headline {mode, head}: the row compared with the published numbers,
    prediction (DRNet) {steps, ground_truth_steps, psnr, ssim, frame_accuracy {head}}: per-step mean/std lists.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from vdcore.files import write_json, write_text
from vdcore.images import save_png, video_grid
from vdeval import plots
from vdeval.factors import ALL_IDENTITY, IDENTITY, Head
from vdeval.published import published_rows
from vdeval.trained_judge import accuracy_lines, below_required


def _pm(stat: Mapping[str, Any] | None, scale: float = 1.0, digits: int = 2) -> str:
    if stat is None:
        return "—"
    return f"{scale * stat['mean']:.{digits}f} ± {scale * stat['std']:.{digits}f}"


def _num(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def markdown(m: Mapping[str, Any]) -> str:
    """The report as Markdown: the papers' table with the quoted rows, then every measured number."""
    heads = [Head.from_json(h) for h in m["judge"]["heads"]]
    names = [h.name for h in heads]
    lines = [
        f"# {m['model']} evaluation: {m['run']}",
        "",
        f"Stage {m['stage']} model on {m['dataset']}/{m['dataset_config']}: {m['clips']} real test clips of "
        f"{m['seq_len']} frames, seeds {m['seeds']} (every number: mean ± std over the seeds).",
        f"Judge {m['judge']['workdir']} (trained on {m['judge']['dataset_config']}):",
        "",
        "```",
        *accuracy_lines(m["judge"]["report"]),
        "```",
        "",
    ]
    headline = m.get("headline")
    if headline:
        mode, head = headline["mode"], headline["head"]
        result = m["results"][mode]
        scores = result["scores"][head]
        caption, published = published_rows(m["dataset"])
        lines += [
            f"## The papers' layout: '{head}' in mode '{mode}' ({m['modes'][mode]['description']})",
            "",
            *_table(
                ["method", "Acc (%)", "IS", "H(y|x)", "H(y)"],
                [
                    [
                        f"**this run ({m['model']}, measured)**",
                        _pm(result["accuracy"].get(head), 100),
                        _pm(scores["inception_score"], digits=3),
                        _pm(scores["intra_entropy"], digits=3),
                        _pm(scores["inter_entropy"], digits=3),
                    ],
                    *[
                        [f"{row[0]} (quoted)", _num(row[1], 2), _num(row[2], 3), _num(row[3], 3), _num(row[4], 3)]
                        for row in published
                    ],
                ],
            ),
            "",
            f"max H(y) = ln {int(round(np.exp(scores['max_entropy']['mean'])))} = {scores['max_entropy']['mean']:.3f}."
            + (f" Quoted rows: {caption}." if caption else " No published numbers exist for this dataset."),
            "",
        ]
    lines += ["## Accuracy consistency (%) of the held factors, by generation mode", ""]
    joint = any(ALL_IDENTITY in m["results"][mode]["accuracy"] for mode in m["modes"])
    columns = names + ([ALL_IDENTITY] if joint else [])
    rows = []
    for mode, info in m["modes"].items():
        acc = m["results"][mode]["accuracy"]
        free = info.get("free", "prior")
        held = f"identity ← {info['identity_from'] or free}, dynamics ← {info['dynamics_from'] or free}"
        rows.append([mode, held, *[_pm(acc.get(n), 100) for n in columns]])
    joint_chance = [f"{100 / np.prod([h.num_classes for h in heads if h.kind == IDENTITY]):.2f}"] if joint else []
    rows.append(["chance", "1/K", *[f"{100 / h.num_classes:.2f}" for h in heads], *joint_chance])
    header = [
        "mode",
        "sources",
        *[f"{h.name} ({'id' if h.kind == IDENTITY else 'dyn'})" for h in heads],
        *(["every id head at once"] if joint else []),
    ]
    lines += [*_table(header, rows), ""]
    lines += ["## Judge scores: IS / H(y|x) / H(y) of each head's softmax", ""]
    rows = []
    for mode in m["modes"]:
        scores = m["results"][mode]["scores"]
        cells = [
            f"{scores[n]['inception_score']['mean']:.2f} / {scores[n]['intra_entropy']['mean']:.3f} / "
            f"{scores[n]['inter_entropy']['mean']:.3f}"
            for n in names
        ]
        rows.append([mode, *cells])
    rows.append(["max", *[f"{h.num_classes} / 0 / {np.log(h.num_classes):.3f}" for h in heads]])
    lines += [*_table(["mode", *names], rows), ""]
    lines += [
        "## Fréchet distance on the judge's penultimate features (real test clips vs generated; not FID)",
        "",
        *_table(["mode", "distance"], [[mode, _pm(m["results"][mode]["frechet"], digits=3)] for mode in m["modes"]]),
        "",
    ]
    held = {mode: m["results"][mode].get("held_codes") or {} for mode in m["modes"]}
    codes = list(dict.fromkeys(code for per in held.values() for code in per))
    if codes:
        lines += [
            "## Held codes, re-encoded: distance of a generated clip's code to its source's / to another clip's",
            "",
            "0: the code survives decoding and encoding exactly; about 1: the generated clip keeps nothing of it.",
            "",
            *_table(
                ["mode", *codes],
                [
                    [mode, *[_pm(per[c]["ratio"], digits=3) if c in per else "—" for c in codes]]
                    for mode, per in held.items()
                ],
            ),
            "",
        ]
    if m.get("probes"):
        lines += ["## Linear probes (%): code → factor, fitted on train codes, scored on test codes (chance)", ""]
        rows = [
            [code, *[f"{_pm(per[n]['accuracy'], 100, 1)} ({100 * per[n]['chance']['mean']:.1f})" for n in names]]
            for code, per in m["probes"].items()
        ]
        lines += [*_table(["code", *names], rows), ""]
    prediction = m.get("prediction")
    if prediction:
        steps = prediction["steps"]
        shown = [s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500) if s <= steps[-1]]
        lines += [
            f"## Prediction from {prediction['n_past']} frames (ground truth for steps ≤ "
            f"{prediction['ground_truth_steps']})",
            "",
        ]
        rows = []
        for s in shown:
            i = steps.index(s)
            truth = s <= prediction["ground_truth_steps"]
            psnr = f"{prediction['psnr']['mean'][i]:.2f}" if truth else "—"
            ssim = f"{prediction['ssim']['mean'][i]:.3f}" if truth else "—"
            accs = [f"{100 * v['mean'][i]:.1f}" for v in prediction["frame_accuracy"].values()]
            rows.append([str(s), psnr, ssim, *accs])
        lines += [
            *_table(["step", "PSNR (dB)", "SSIM", *[f"{n} acc (%)" for n in prediction["frame_accuracy"]]], rows),
            "",
        ]
    low = below_required(m["judge"]["report"]["accuracy"])
    if low:
        lines += [f"Note: the judge is below 99 % held-out accuracy on {', '.join(low)}; those columns are weak.", ""]
    return "\n".join(lines)


def write_report(out_dir: str, m: Mapping[str, Any], pictures: Mapping[str, np.ndarray]) -> dict[str, str]:
    """Write metrics.json, metrics.md and the plots into out_dir; returns {what: path}."""
    os.makedirs(out_dir, exist_ok=True)
    heads = [Head.from_json(h) for h in m["judge"]["heads"]]
    paths = {
        "json": write_json(os.path.join(out_dir, "metrics.json"), m),
        "markdown": write_text(os.path.join(out_dir, "metrics.md"), markdown(m)),
    }
    groups = {
        mode: {h: (s["mean"], s["std"]) for h, s in m["results"][mode]["accuracy"].items()} for mode in m["modes"]
    }
    chance = {h.name: 1.0 / h.num_classes for h in heads}
    if any(groups.values()):
        paths["accuracy_plot"] = plots.accuracy_bars(
            {k: v for k, v in groups.items() if v},
            os.path.join(out_dir, "accuracy.png"),
            f"{m['model']}: accuracy of the held factors (judge)",
            chance,
        )
    if m.get("probes"):
        probe_groups = {
            code: {h: (s["accuracy"]["mean"], s["accuracy"]["std"]) for h, s in per.items()}
            for code, per in m["probes"].items()
        }
        paths["probe_plot"] = plots.accuracy_bars(
            probe_groups, os.path.join(out_dir, "probes.png"), f"{m['model']}: linear probes, code → factor", chance
        )
    prediction = m.get("prediction")
    if prediction:
        steps = prediction["steps"]
        series = {h: (v["mean"], v["std"]) for h, v in prediction["frame_accuracy"].items()}
        paths["horizon_accuracy_plot"] = plots.mean_std_curves(
            steps, series, os.path.join(out_dir, "horizon_accuracy.png"), "judge accuracy (per frame)"
        )
        truth = prediction["ground_truth_steps"]
        for key, label in (("psnr", "PSNR (dB)"), ("ssim", "SSIM")):
            stat = prediction[key]
            paths[f"horizon_{key}_plot"] = plots.mean_std_curves(
                steps[:truth],
                {key: (stat["mean"][:truth], stat["std"][:truth])},
                os.path.join(out_dir, f"horizon_{key}.png"),
                label,
            )
    for mode, videos in pictures.items():
        paths[f"clips_{mode}"] = save_png(os.path.join(out_dir, f"clips_{mode}.png"), video_grid(videos))
    return paths


def write_evaluation(
    workdir: str, out: str | None, m: Mapping[str, Any], pictures: Mapping[str, np.ndarray]
) -> dict[str, Any]:
    """An evaluate command's result: the report written into `out` (default <workdir>/evaluation) →
    {'metrics', 'markdown', 'paths'}."""
    paths = write_report(out or os.path.join(workdir, "evaluation"), m, pictures)
    return {"metrics": m, "markdown": markdown(m), "paths": paths}
