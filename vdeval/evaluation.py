"""The field's disentanglement protocol, independent of the model: generate with one factor held, judge, score.

A model's evaluate command (vdsm_jax.evaluate, drnet_jax.evaluate) supplies its generation modes — functions
(videos_a, videos_b, seed) → generated videos, saying where each kind of factor comes from: test clip A, its
partner B (a seeded derangement of the test clips: B ≠ A), or nothing (sampled from a prior). For every seed:

- the judge classifies every generated clip; a head whose factor is held is scored by accuracy consistency
  against its source's real label (DSVAE, S3VAE, C-DSVAE); every head gets IS, H(y|x), H(y) on its softmax,
  on a subset balanced by the source's labels where the factor is held (the peers' 'minimum count per class');
- the Fréchet distance between the judge's penultimate features of the real test clips and of the generated
  ones (a Fréchet distance on judge features, not FID);
- linear probes from each of the model's codes to every factor (fitted on train-clip codes, a seeded 80 %
  of them per seed, scored on the test clips' codes), with chance beside each.

Every number is then summarised over the seeds as mean ± std (vdeval.metrics.summarize_repeats).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from data_prep.input_pipeline import ordered_clips
from data_prep.samplers import SplitSource
from vdcore.checkpoint import CHECKPOINT_SUBDIR
from vdeval import metrics
from vdeval.factors import (
    ALL_IDENTITY,
    DYNAMICS,
    IDENTITY,
    Head,
    head_classes,
    joint_identity_heads,
    with_all_identity,
)
from vdeval.trained_judge import TrainedJudge

# A model's evaluate command: evaluate(workdir, judge_dir, *, data_dir, seeds, max_clips, max_probe_clips,
# horizon, out, step) -> {"metrics", "markdown", "paths"} (vdsm_jax.evaluate, drnet_jax.evaluate).
EvaluateFn = Callable[..., dict[str, Any]]

SOURCES = ("a", "b", None)
PROBE_TRAIN_FRACTION = 0.8


@dataclasses.dataclass(frozen=True)
class GenerationMode:
    """name: a key of the report; identity_from / dynamics_from: 'a', 'b' or None (not from a clip: `free` says
    where from, e.g. 'prior' or 'predicted'); generate(videos_a, videos_b, seed) → videos (B, T, S, S, C) in
    [0, 1], T the judge's seq_len."""

    name: str
    description: str
    identity_from: str | None
    dynamics_from: str | None
    generate: Callable[[np.ndarray, np.ndarray, int], np.ndarray]
    free: str = "prior"

    def __post_init__(self):
        if self.identity_from not in SOURCES or self.dynamics_from not in SOURCES:
            raise ValueError(f"mode {self.name}: identity_from / dynamics_from must be 'a', 'b' or None")

    def source(self, head: Head) -> str | None:
        return self.identity_from if head.kind == IDENTITY else self.dynamics_from


@dataclasses.dataclass
class Clips:
    """Real clips with their judge classes: videos float (N, T, S, S, C), classes {head: (N,)}."""

    videos: np.ndarray
    classes: dict[str, np.ndarray]


def clip_indices(count: int, max_clips: int, seed: int = 0) -> np.ndarray:
    """Which of a split's `count` clips are evaluated: all, or a sorted seeded choice of `max_clips`."""
    if max_clips < 1:
        raise ValueError(f"max_clips must be >= 1, got {max_clips}")
    if count <= max_clips:
        return np.arange(count)
    return np.sort(np.random.default_rng([seed, 3]).choice(count, max_clips, replace=False))


def stage_workdir(workdir: str) -> str:
    """A run folder → the stage to evaluate: <workdir>/stage2 (or stage1) of a 'both' run, else workdir itself."""
    for stage in ("stage2", "stage1"):
        candidate = os.path.join(workdir, stage)
        if os.path.isdir(os.path.join(candidate, CHECKPOINT_SUBDIR)):
            return candidate
    return workdir


def load_clips(source: SplitSource, heads: Sequence[Head], seq_len: int, max_clips: int, seed: int = 0) -> Clips:
    """Up to `max_clips` clips of a split (a seeded choice when it has more), each its first seq_len frames."""
    picks = clip_indices(len(source), max_clips, seed)
    videos, classes = [], {h.name: [] for h in heads}
    for batch in ordered_clips(source, seq_len, picks, batch_size=64):
        videos.append(batch["video"])
        for name, value in head_classes(tuple(heads), batch).items():
            classes[name].append(value)
    return Clips(np.concatenate(videos), {k: np.concatenate(v) for k, v in classes.items()})


def partners(count: int, seed: int) -> np.ndarray:
    """A seeded random derangement: partner[i] ≠ i (a random cycle through all clips)."""
    if count < 2:
        raise ValueError(f"swaps need at least 2 test clips, got {count}")
    order = np.random.default_rng([seed, 5]).permutation(count)
    partner = np.empty(count, np.int64)
    partner[order] = np.roll(order, -1)
    return partner


def _generate(mode: GenerationMode, videos: np.ndarray, partner: np.ndarray, seed: int, batch: int) -> np.ndarray:
    parts = []
    for number, start in enumerate(range(0, len(videos), batch)):
        rows = np.arange(start, min(start + batch, len(videos)))
        parts.append(np.asarray(mode.generate(videos[rows], videos[partner[rows]], seed * 100_003 + number)))
    return np.concatenate(parts)


def score_mode(
    judge: TrainedJudge,
    mode: GenerationMode,
    generated: np.ndarray,
    clips: Clips,
    partner: np.ndarray,
    real_features: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """One mode at one seed: accuracy of the held heads (and ALL_IDENTITY, every identity head right at once, with
    two or more of them: with two digits, a generator that keeps each digit with probability p independently
    scores about p², one that keeps neither about 1 / (K_1 K_2)), judge scores of every head, Fréchet distance."""
    out = judge.classify(generated)
    accuracy, scores = {}, {}
    for head in judge.heads:
        source = mode.source(head)
        labels = None
        if source is not None:
            labels = clips.classes[head.name] if source == "a" else clips.classes[head.name][partner]
            accuracy[head.name] = metrics.accuracy(out.probs[head.name], labels)
        scores[head.name] = metrics.judge_scores(out.probs[head.name], labels, rng)
    joint = joint_identity_heads(judge.heads)
    if joint and mode.identity_from is not None:
        rows = slice(None) if mode.identity_from == "a" else partner
        hits = {h.name: out.probs[h.name].argmax(-1) == clips.classes[h.name][rows] for h in joint}
        accuracy[ALL_IDENTITY] = float(np.mean(with_all_identity(hits, [h.name for h in joint])[ALL_IDENTITY]))
    return {"accuracy": accuracy, "scores": scores, "frechet": metrics.frechet_distance(real_features, out.features)}


def held_codes(
    mode: GenerationMode,
    generated_codes: Mapping[str, np.ndarray],
    clip_codes: Mapping[str, np.ndarray],
    code_kinds: Mapping[str, str],
    partner: np.ndarray,
) -> dict[str, dict[str, float]]:
    """{code: metrics.held_code_distance} for each code the mode holds from clip A or B; the baseline clip of
    row i is partner[partner[i]], neither A nor B (the derangement is one cycle; needs >= 3 clips)."""
    other = partner[partner]
    out = {}
    for code, kind in code_kinds.items():
        source = mode.identity_from if kind == IDENTITY else mode.dynamics_from
        if source is None:
            continue
        held = clip_codes[code] if source == "a" else clip_codes[code][partner]
        out[code] = metrics.held_code_distance(generated_codes[code], held, clip_codes[code][other])
    return out


def evaluate_modes(
    judge: TrainedJudge,
    clips: Clips,
    modes: Sequence[GenerationMode],
    seeds: Sequence[int],
    batch: int = 32,
    samples: int = 8,
    encode_codes: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
    code_kinds: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(per-mode results summarised over seeds, the first `samples` generated clips of each mode at the first seed).

    With encode_codes and code_kinds ({code name: IDENTITY or DYNAMICS}) every mode's generated clips are also
    re-encoded and their held codes compared with their sources' (`held_codes`; with >= 3 clips).
    """
    real_features = judge.classify(clips.videos).features
    reencode = encode_codes is not None and bool(code_kinds) and len(clips.videos) >= 3
    clip_codes = encode_codes(clips.videos) if reencode else None
    repeats, pictures = [], {}
    with tqdm(total=len(seeds) * len(modes), desc="generation modes", unit="mode") as bar:
        for seed in seeds:
            partner = partners(len(clips.videos), seed)
            rng = np.random.default_rng([seed, 9])
            results = {}
            for mode in modes:
                generated = _generate(mode, clips.videos, partner, seed, batch)
                if seed == seeds[0]:
                    pictures[mode.name] = generated[:samples]
                results[mode.name] = score_mode(judge, mode, generated, clips, partner, real_features, rng)
                if reencode:
                    codes = encode_codes(generated)
                    results[mode.name]["held_codes"] = held_codes(mode, codes, clip_codes, code_kinds, partner)
                bar.update(1)
            repeats.append(results)
    return metrics.summarize_repeats(repeats), pictures


def probe_codes(
    train_codes: Mapping[str, np.ndarray],
    train_classes: Mapping[str, np.ndarray],
    test_codes: Mapping[str, np.ndarray],
    test_classes: Mapping[str, np.ndarray],
    seeds: Sequence[int],
) -> dict[str, Any]:
    """{code: {head: accuracy, chance, uniform_chance}} summarised over seeds (each a seeded 80 % of the train codes)."""
    repeats = []
    for seed in seeds:
        rng = np.random.default_rng([seed, 13])
        result = {}
        for code, train in train_codes.items():
            keep = np.sort(rng.choice(len(train), max(2, int(PROBE_TRAIN_FRACTION * len(train))), replace=False))
            result[code] = {
                head: metrics.linear_probe(train[keep], train_classes[head][keep], test_codes[code], test_classes[head])
                for head in test_classes
            }
        repeats.append(result)
    return metrics.summarize_repeats(repeats)


def primary_dynamics_head(heads: Sequence[Head]) -> Head | None:
    """The head of the papers' table (Sprites / MUG: action; Moving MNIST: direction)."""
    return next((h for h in heads if h.kind == DYNAMICS), None)


def evaluate_model(
    *,
    model_name: str,
    run: str,
    stage: int,
    dataset: str,
    dataset_config: str | None,
    frame_shape: tuple[int, int],
    splits: tuple[str, str],
    data_dir: str,
    judge: TrainedJudge,
    modes: Sequence[GenerationMode] | Callable[[np.ndarray], Sequence[GenerationMode]],
    encode_codes: Callable[[np.ndarray], dict[str, np.ndarray]],
    code_kinds: Mapping[str, str],
    headline_mode: str | None,
    seeds: Sequence[int],
    max_clips: int,
    max_probe_clips: int,
    skipped_modes: Mapping[str, str] | None = None,
    headline_head: str | None = None,
    extra: Callable[[SplitSource, np.ndarray, Sequence[int]], tuple[dict, dict[str, np.ndarray]]] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The whole protocol for one trained model → (metrics dict as vdeval.report describes, pictures per mode).

    frame_shape: (image size, channels) of the run's clips, checked against the judge's; splits: (train, test).
    modes: the generation modes, or a function of the probes' training clips (N, T, S, S, C) that returns them,
    for modes fitted to the training data (VDSM's fitted identity prior).
    encode_codes(videos) → {code name: (N, D)} for the probes and the re-encoded held codes; code_kinds: {code
    name: IDENTITY or DYNAMICS}, which factor each code carries; headline_head: the head of the papers' row
    (default: the first dynamics head); extra(test split, the indices of its evaluated clips, seeds) →
    (model-specific sections of the metrics, more pictures), e.g. DRNet's prediction horizon.
    """
    from data_prep.input_pipeline import open_dataset, split_source

    if len(seeds) < 1:
        raise ValueError("give at least one seed (the protocol reports mean ± std over >= 3)")
    judge.check_matches(dataset, frame_shape[0], frame_shape[1], f"run {run}")
    builder = open_dataset(dataset, data_dir, dataset_config)
    config_name = builder.builder_config.name if builder.builder_config is not None else "default"
    train_split, test_split = splits
    test_source = split_source(builder, test_split)
    test = load_clips(test_source, judge.heads, judge.seq_len, max_clips)
    train = load_clips(split_source(builder, train_split), judge.heads, judge.seq_len, max_probe_clips)
    if callable(modes):
        modes = modes(train.videos)
    results, pictures = evaluate_modes(judge, test, modes, seeds, encode_codes=encode_codes, code_kinds=code_kinds)
    probes = probe_codes(encode_codes(train.videos), train.classes, encode_codes(test.videos), test.classes, seeds)
    headline = judge.head(headline_head) if headline_head else primary_dynamics_head(judge.heads)
    m: dict[str, Any] = {
        "model": model_name,
        "run": run,
        "stage": stage,
        "dataset": dataset,
        "dataset_config": config_name,
        "seq_len": judge.seq_len,
        "seeds": list(seeds),
        "clips": len(test.videos),
        "probe_train_clips": len(train.videos),
        "judge": {
            "workdir": judge.workdir,
            "dataset_config": judge.meta["dataset_config"],
            "heads": [h.to_json() for h in judge.heads],
            "report": judge.meta.get("report"),
        },
        "modes": {
            mode.name: {
                "description": mode.description,
                "identity_from": mode.identity_from,
                "dynamics_from": mode.dynamics_from,
                "free": mode.free,
            }
            for mode in modes
        },
        "skipped_modes": dict(skipped_modes or {}),
        "results": results,
        "probes": probes,
        "headline": (
            {"mode": headline_mode, "head": headline.name}
            if headline_mode in results and headline is not None
            else None
        ),
    }
    if extra is not None:
        sections, extra_pictures = extra(test_source, clip_indices(len(test_source), max_clips), seeds)
        m.update(sections)
        pictures.update(extra_pictures)
    return m, pictures
