"""The labelled factors a judge classifies, per dataset, and how they are read from a record's labels.

Each judge head is one categorical factor of a built dataset (data_prep/builders):

| dataset | identity heads (held by the identity / content code) | dynamics heads (held by the dynamics / pose code) |
|---|---|---|
| sprites | body, shirt, pants, hair | action (3 motions x 3 directions = 9) |
| moving_mnist | digit (1 digit) or digit_k (colour channel k) | direction or direction_k: signs of the (dy, dx) velocity, 3 x 3 |
| pendulum | colour, radius, length | angle_bin, velocity_bin, damping_bin (initial values, binned) |
| mug_fed | identity (subject) | action (expression) |
| kth | - | action |

The Moving MNIST velocity is the clip's initial one (it reflects at the borders), so its judge reads clips from
their first frame (see vdeval.judge_data).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from data_prep.builders.base import VideoDatasetBuilder

IDENTITY, DYNAMICS = "identity", "dynamics"
# The accuracy key of 'every identity head right at once' (two-digit Moving MNIST: both digits read), reported
# beside the heads' own accuracies where a judge has two or more identity heads.
ALL_IDENTITY = "all_identity"
DIRECTION_NAMES = tuple(f"{dy}/{dx}" for dy in ("up", "still", "down") for dx in ("left", "still", "right"))


@dataclasses.dataclass(frozen=True)
class Head:
    """One judge head: a categorical factor with `num_classes` classes.

    kind: IDENTITY (a static factor, also judged frame by frame) or DYNAMICS (needs the sequence).
    label: the record label it is read from; slot: index into that label's leading axis (multi-digit Moving
    MNIST), or None for a scalar label; derived: how the class is computed from the label ('' = the label is
    the class; 'velocity_signs': 3 x 3 classes of the signs of (dy, dx)).
    """

    name: str
    num_classes: int
    kind: str
    label: str
    slot: int | None = None
    derived: str = ""
    class_names: tuple[str, ...] = ()

    @property
    def framewise(self) -> bool:
        return self.kind == IDENTITY

    def classes_of(self, labels: Mapping[str, np.ndarray]) -> np.ndarray:
        """The head's class of every record in a batch of labels (leading axis B) → int64 (B,)."""
        if self.label not in labels:
            raise KeyError(f"judge head {self.name!r} needs label {self.label!r}; the batch has {sorted(labels)}")
        value = np.asarray(labels[self.label])
        if self.slot is not None:
            value = value[:, self.slot]
        if self.derived == "velocity_signs":
            signs = np.sign(value).astype(np.int64) + 1  # (B, 2): 0 negative, 1 zero, 2 positive
            return signs[:, 0] * 3 + signs[:, 1]
        return value.astype(np.int64)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> Head:
        return cls(**{**data, "class_names": tuple(data.get("class_names", ()))})


def _named(builder: VideoDatasetBuilder, name: str, kind: str, num_classes: int | None = None) -> Head:
    names = tuple(builder.label_classes().get(name, ()))
    count = num_classes if num_classes is not None else len(names)
    if count < 1:
        raise ValueError(f"dataset '{builder.name}': no class count for factor {name!r}")
    return Head(name, count, kind, name, class_names=names)


def _moving_mnist(builder: VideoDatasetBuilder) -> tuple[Head, ...]:
    count = builder.builder_config.num_digits
    heads = []
    for slot in range(count):
        suffix = "" if count == 1 else f"_{slot}"
        digits = tuple(str(d) for d in range(10))
        heads.append(Head(f"digit{suffix}", 10, IDENTITY, "digits", slot, class_names=digits))
    for slot in range(count):
        suffix = "" if count == 1 else f"_{slot}"
        heads.append(Head(f"direction{suffix}", 9, DYNAMICS, "velocities", slot, "velocity_signs", DIRECTION_NAMES))
    return tuple(heads)


def _sprites(builder: VideoDatasetBuilder) -> tuple[Head, ...]:
    static = tuple(_named(builder, name, IDENTITY) for name in ("body", "shirt", "pants", "hair"))
    return (*static, _named(builder, "action", DYNAMICS))


def _pendulum(builder: VideoDatasetBuilder) -> tuple[Head, ...]:
    bins = builder.builder_config.num_bins
    static = tuple(_named(builder, name, IDENTITY) for name in ("colour", "radius", "length"))
    dynamic = tuple(_named(builder, name, DYNAMICS, bins) for name in ("angle_bin", "velocity_bin", "damping_bin"))
    return (*static, *dynamic)


def _mug_fed(builder: VideoDatasetBuilder, num_identities: int) -> tuple[Head, ...]:
    from data_prep.builders.mug_fed import NUM_ACTIONS

    return (Head("identity", num_identities, IDENTITY, "identity"), _named(builder, "action", DYNAMICS, NUM_ACTIONS))


def _kth(builder: VideoDatasetBuilder) -> tuple[Head, ...]:
    return (_named(builder, "action", DYNAMICS),)


def judge_heads(builder: VideoDatasetBuilder, all_labels: Mapping[str, np.ndarray] | None = None) -> tuple[Head, ...]:
    """The judge heads of a prepared dataset. `all_labels` (labels of every split, stacked) sizes the heads
    whose class count only the data knows (MUG-FED subjects)."""
    name = builder.name
    if name == "moving_mnist":
        return _moving_mnist(builder)
    if name == "sprites":
        return _sprites(builder)
    if name == "pendulum":
        return _pendulum(builder)
    if name == "kth":
        return _kth(builder)
    if name == "mug_fed":
        if all_labels is None:
            raise ValueError("mug_fed judge heads need the labels of every split to count the subjects")
        return _mug_fed(builder, int(np.max(all_labels["identity"])) + 1)
    raise ValueError(f"no judge heads are defined for dataset {name!r}")


def joint_identity_heads(heads: tuple[Head, ...]) -> tuple[Head, ...]:
    """The identity heads scored jointly under ALL_IDENTITY: all of them when there are two or more, else none."""
    identity = tuple(h for h in heads if h.kind == IDENTITY)
    return identity if len(identity) >= 2 else ()


def with_all_identity(hits: Mapping[str, np.ndarray], joint: Sequence[str]) -> dict[str, np.ndarray]:
    """`hits` ({head name: bool array of whether the judge read that head right}, e.g. (N,) per clip or (N, T) per
    frame) as a new dict, with ALL_IDENTITY added when `joint` names any heads: the logical AND of their arrays,
    of their one shape, every one of them right at once. `joint` is the names of joint_identity_heads (empty
    below two identity heads, and then nothing is added). ValueError naming the heads if their shapes differ."""
    out = dict(hits)
    if not joint:
        return out
    shapes = {name: np.shape(hits[name]) for name in joint}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"the hits of the jointly scored identity heads must have one shape; got {shapes}")
    out[ALL_IDENTITY] = np.logical_and.reduce([np.asarray(hits[name], bool) for name in joint])
    return out


def head_classes(heads: tuple[Head, ...], labels: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{head name: int64 (B,) classes} of a batch of labels, each checked to lie in [0, num_classes)."""
    out = {}
    for head in heads:
        classes = head.classes_of(labels)
        if classes.size and (classes.min() < 0 or classes.max() >= head.num_classes):
            raise ValueError(
                f"judge head {head.name!r}: label {head.label!r} gives classes in [{classes.min()}, {classes.max()}], "
                f"outside [0, {head.num_classes})"
            )
        out[head.name] = classes
    return out
