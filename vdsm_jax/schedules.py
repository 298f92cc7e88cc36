"""VDSM's annealing and temperature schedules as optax schedules.

The PyTorch original builds one value per *epoch* into a Python/NumPy array before
training and reads ``schedule[epoch]`` at every step of that epoch. Here every
schedule is a function of the optimiser *step* (``epoch = step // steps_per_epoch``,
steps and epochs counted from 0) that returns, for every epoch the original can
reach, the same value as the original array (up to the float precision JAX runs in:
float32 by default, float64 under ``jax_enable_x64``). All schedules are pure
``jnp`` functions of the step, so they can be called inside ``jax.jit``.

Four schedules drive training (see ``VDSMSchedules``):

* ``temp_id`` — temperature of the identity softmax, ``w = softmax(temp_id · ID)``;
* ``anneal_id`` — weight (Pyro ``poutine.scale``) of the identity KL term;
* ``anneal_t`` — weight of the per-frame latent ``z_t`` terms;
* ``anneal_dynamics`` — weight of the dynamics ``dz`` terms (stage 2).
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy.interpolate import make_interp_spline

ANNEAL_T_MIN = 0.005
"""Lower clip bound of the ``anneal_t`` schedule (as in the original)."""
ANNEAL_T_MAX = 80.0
"""Upper clip bound of the ``anneal_t`` schedule (as in the original)."""

SCHEDULE_CONFIG_FIELDS: tuple[str, ...] = (
    "epochs",
    "bs_per_epoch",
    "temp_id_start",
    "temp_id_end",
    "temp_id_frac",
    "anneal_start_id",
    "anneal_end_id",
    "anneal_frac_id",
    "anneal_start_t",
    "anneal_mid_t1",
    "anneal_mid_t2",
    "anneal_end_t",
    "anneal_t_midfrac1",
    "anneal_t_midfrac2",
    "anneal_start_dynamics",
    "anneal_end_dynamics",
    "anneal_frac_dynamics",
)
"""Config fields ``make_schedules`` reads (the original's command-line flag names)."""


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive integer, got the bool {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive integer, got {value!r} ({type(value).__name__})") from None
    if number < 1:
        raise ValueError(f"{name} must be a positive integer, got {number}")
    return number


def _finite_float(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a finite number, got the bool {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r} ({type(value).__name__})") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {number}")
    return number


def _epoch_of(step: Any, steps_per_epoch: int) -> jax.Array:
    """Epoch index (int array, same shape as ``step``) of optimiser step(s) ``step``; negative steps → epoch 0."""
    return jnp.maximum(jnp.asarray(step) // steps_per_epoch, 0)


def cosine_ramp_array_length(epochs: int, frac: float, dynamics_quirk: bool = False) -> tuple[int, int]:
    """``(m, n)`` of the original half-cosine array: ``m`` constant epochs and ``n`` ramp epochs.

    ``n = ceil(epochs / frac)`` (with ``dynamics_quirk``: ``ceil(epochs // frac)``, the
    original's expression for ``anneal_dynamics``, one shorter whenever ``frac`` does
    not divide ``epochs``) and ``m = (frac - 1) * epochs // frac``, both evaluated with
    Python float arithmetic exactly as the original does. The original array has
    ``m + n`` entries, which is usually but not always ``epochs``.
    """
    n = math.ceil(epochs // frac) if dynamics_quirk else math.ceil(epochs / frac)
    m = int((frac - 1) * epochs // frac)
    return m, n


def cosine_ramp_schedule(
    start: float,
    end: float,
    frac: float,
    epochs: int,
    steps_per_epoch: int,
    dynamics_quirk: bool = False,
) -> optax.Schedule:
    """Half-cosine ramp from ``start`` to ``end`` over the first ``epochs / frac`` epochs, then ``end``.

    The original (``temp_id``, ``anneal_id``, ``anneal_dynamics``) builds, with
    ``E = epochs`` and ``(m, n) = cosine_ramp_array_length(E, frac, dynamics_quirk)``::

        r_k = start + (end - start) * (cos(pi * k / (E / frac)) + 1) / 2,   k = 0 .. n-1
        array = reverse(concat(m copies of end, [r_0, ..., r_{n-1}]))

    and reads ``array[epoch]``. So epoch ``e < n`` gets ``r_{n-1-e}`` (starting near,
    not exactly at, ``start`` unless ``frac`` divides ``E``) and epochs ``n .. m+n-1``
    get ``end``. This function returns that value in closed form, without a table.

    Length quirk: the array has ``m + n`` entries, not necessarily ``E``.

    * ``m + n < E``: always with ``dynamics_quirk`` when ``frac`` does not divide ``E``
      (e.g. ``E=7, frac=2``: 6 entries), and occasionally through float rounding of
      ``(frac - 1) * E // frac`` (e.g. ``E=17, frac=1.7``: 16 entries). The original then
      indexes past the end of its array in the last epoch(s), which raises ``IndexError``
      in Python. This schedule instead holds the array's last value for every epoch
      ``>= m + n`` (and for every epoch ``>= E``, when training runs longer): ``end`` if
      ``m >= 1``, otherwise ``r_0``, which equals ``end`` up to rounding.
    * ``m + n > E`` (float rounding, e.g. ``E=57, frac=2.28``: 58 entries): the extra
      trailing entries (all ``end``) are simply never reached.

    ``start == end`` gives a constant schedule (e.g. the stage-2 ``temp_id`` of 10).

    Args:
      start: value the ramp starts near (epoch 0).
      end: value reached at epoch ``n - 1`` and held afterwards.
      frac: ``>= 1``; the ramp lasts ``ceil(epochs / frac)`` epochs (the original's
        ``temp_id_frac`` / ``anneal_frac_id`` / ``anneal_frac_dynamics``).
      epochs: number of training epochs ``E`` (the original's ``epochs``), ``>= 1``.
      steps_per_epoch: optimiser steps per epoch (the original's ``bs_per_epoch``), ``>= 1``.
      dynamics_quirk: use the original ``anneal_dynamics`` length ``ceil(E // frac)``
        instead of ``ceil(E / frac)``; the cosine argument still uses ``E / frac``.

    Returns:
      An optax schedule: int step (scalar or array) → float value of the same shape.

    Raises:
      ValueError: non-finite ``start``/``end``/``frac``, ``frac < 1`` (the original's
        constant block would have negative length), non-positive ``epochs`` or
        ``steps_per_epoch``, or an empty original array (``dynamics_quirk`` with
        ``epochs < frac``, where the original cannot index even epoch 0).
    """
    start = _finite_float(start, "start")
    end = _finite_float(end, "end")
    frac = _finite_float(frac, "frac")
    epochs = _positive_int(epochs, "epochs")
    steps_per_epoch = _positive_int(steps_per_epoch, "steps_per_epoch")
    if frac < 1.0:
        raise ValueError(
            f"frac must be >= 1 (the ramp lasts epochs/frac epochs and is followed by (frac-1)*epochs//frac "
            f"constant epochs), got frac={frac}"
        )
    m, n = cosine_ramp_array_length(epochs, frac, dynamics_quirk)
    if n < 1:
        raise ValueError(
            f"the cosine ramp for epochs={epochs}, frac={frac} (dynamics_quirk={dynamics_quirk}) has no entries: "
            f"ceil(epochs // frac) = {n}, so the original could not index epoch 0; use epochs >= frac"
        )
    period = epochs / frac
    delta = end - start

    def schedule(step: Any) -> jax.Array:
        epoch = _epoch_of(step, steps_per_epoch)
        k = jnp.clip(n - 1 - epoch, 0, n - 1)
        ramp = start + delta * (jnp.cos(jnp.pi * k / period) + 1.0) / 2.0
        if m == 0:
            # The array is the ramp alone; past its end we hold its last entry r_0.
            return ramp
        return jnp.where(epoch >= n, end, ramp)

    return schedule


def anneal_t_table(
    start: float,
    mid1: float,
    mid2: float,
    end: float,
    midfrac1: float,
    midfrac2: float,
    epochs: int,
) -> np.ndarray:
    """Per-epoch ``anneal_t`` values (float64, shape ``(epochs,)``), computed as the original does.

    A quadratic interpolating spline (what ``scipy.interpolate.interp1d(kind='quadratic')``
    builds: ``make_interp_spline(x, y, k=2)``) through ``(0, start)``,
    ``(epochs·midfrac1, mid1)``, ``(epochs·midfrac2, mid2)``, ``(epochs-1, end)``,
    evaluated at epochs ``0 .. epochs-1`` and clipped to ``[ANNEAL_T_MIN, ANNEAL_T_MAX]``.

    Raises:
      ValueError: ``midfrac2 <= midfrac1``, or knots not strictly increasing
        (needs ``0 < epochs·midfrac1`` and ``epochs·midfrac2 < epochs - 1``), or
        non-finite values, or ``epochs < 1``.
    """
    ys = [_finite_float(v, name) for v, name in ((start, "start"), (mid1, "mid1"), (mid2, "mid2"), (end, "end"))]
    midfrac1 = _finite_float(midfrac1, "midfrac1")
    midfrac2 = _finite_float(midfrac2, "midfrac2")
    epochs = _positive_int(epochs, "epochs")
    if not midfrac2 > midfrac1:
        raise ValueError(
            f"anneal_t needs midfrac2 > midfrac1 (the spline knots must be increasing), "
            f"got midfrac1={midfrac1}, midfrac2={midfrac2}"
        )
    knots = np.array([0.0, epochs * midfrac1, epochs * midfrac2, epochs - 1.0], dtype=np.float64)
    if not np.all(np.diff(knots) > 0):
        raise ValueError(
            f"anneal_t spline knots must be strictly increasing: 0 < epochs*midfrac1 < epochs*midfrac2 < epochs-1, "
            f"got {knots.tolist()} for epochs={epochs}, midfrac1={midfrac1}, midfrac2={midfrac2}"
        )
    spline = make_interp_spline(knots, np.array(ys, dtype=np.float64), k=2)
    table = spline(np.arange(epochs, dtype=np.float64))
    return np.clip(table, ANNEAL_T_MIN, ANNEAL_T_MAX)


def anneal_t_schedule(
    start: float,
    mid1: float,
    mid2: float,
    end: float,
    midfrac1: float,
    midfrac2: float,
    epochs: int,
    steps_per_epoch: int,
) -> optax.Schedule:
    """``anneal_t`` as an optax schedule: a lookup in ``anneal_t_table(...)`` by epoch.

    The table is computed once here (NumPy/SciPy, float64) and indexed with
    ``clip(step // steps_per_epoch, 0, epochs - 1)``, so epochs past the end hold
    the last value (the original would raise ``IndexError`` there). Values come out in
    JAX's default float dtype (float32 unless ``jax_enable_x64``).

    Raises:
      ValueError: see ``anneal_t_table``; also ``steps_per_epoch < 1``.
    """
    table = anneal_t_table(start, mid1, mid2, end, midfrac1, midfrac2, epochs)
    steps_per_epoch = _positive_int(steps_per_epoch, "steps_per_epoch")
    last = table.shape[0] - 1

    def schedule(step: Any) -> jax.Array:
        epoch = jnp.minimum(_epoch_of(step, steps_per_epoch), last)
        return jnp.asarray(table)[epoch]

    return schedule


def constant_schedule(value: float) -> optax.Schedule:
    """A schedule that is ``value`` at every step (e.g. the test-time ``test_temp_id``)."""
    return optax.constant_schedule(_finite_float(value, "value"))


@dataclasses.dataclass(frozen=True)
class VDSMSchedules:
    """The four VDSM schedules, each an optax schedule of the optimiser step.

    Frozen and hashable, so it can be a static argument of ``jax.jit`` or be closed over.
    """

    temp_id: optax.Schedule
    anneal_id: optax.Schedule
    anneal_t: optax.Schedule
    anneal_dynamics: optax.Schedule


def _read_field(config: Any, name: str) -> Any:
    missing = object()
    if isinstance(config, Mapping):
        value = config.get(name, missing)
    else:
        value = getattr(config, name, missing)
    return None if value is missing else value


def make_schedules(config: Any) -> VDSMSchedules:
    """Build the four schedules from flat config fields named like the original's flags.

    ``config`` is any object with attribute access (``ml_collections.ConfigDict``,
    dataclass, namespace) or a mapping, holding every name in ``SCHEDULE_CONFIG_FIELDS``.
    ``bs_per_epoch`` is the number of optimiser steps per epoch. ``anneal_dynamics``
    uses the original's ``ceil(epochs // frac)`` ramp length (``dynamics_quirk=True``).

    Raises:
      ValueError: a missing field (all missing names are listed) or an invalid value
        (the message names the config fields of the schedule concerned).
    """
    missing = [name for name in SCHEDULE_CONFIG_FIELDS if _read_field(config, name) is None]
    if missing:
        raise ValueError(
            f"schedule config is missing (or has None for) field(s) {', '.join(missing)} (needs {SCHEDULE_CONFIG_FIELDS})"
        )
    c = {name: _read_field(config, name) for name in SCHEDULE_CONFIG_FIELDS}
    ramps = {
        "temp_id": ("temp_id_start", "temp_id_end", "temp_id_frac", False),
        "anneal_id": ("anneal_start_id", "anneal_end_id", "anneal_frac_id", False),
        "anneal_dynamics": ("anneal_start_dynamics", "anneal_end_dynamics", "anneal_frac_dynamics", True),
    }
    built: dict[str, optax.Schedule] = {}
    for key, (start, end, frac, quirk) in ramps.items():
        try:
            built[key] = cosine_ramp_schedule(c[start], c[end], c[frac], c["epochs"], c["bs_per_epoch"], quirk)
        except ValueError as err:
            fields = ", ".join(f"{f}={c[f]!r}" for f in (start, end, frac, "epochs", "bs_per_epoch"))
            raise ValueError(f"invalid {key} schedule config ({fields}): {err}") from err
    t_fields = (
        "anneal_start_t",
        "anneal_mid_t1",
        "anneal_mid_t2",
        "anneal_end_t",
        "anneal_t_midfrac1",
        "anneal_t_midfrac2",
        "epochs",
        "bs_per_epoch",
    )
    try:
        built["anneal_t"] = anneal_t_schedule(*(c[f] for f in t_fields))
    except ValueError as err:
        fields = ", ".join(f"{f}={c[f]!r}" for f in t_fields)
        raise ValueError(f"invalid anneal_t schedule config ({fields}): {err}") from err
    return VDSMSchedules(**built)


def values_at(schedules: VDSMSchedules, step: Any) -> dict[str, jax.Array]:
    """The four schedule values at optimiser step ``step`` (int scalar or array).

    Returns ``{'temp_id', 'anneal_id', 'anneal_t', 'anneal_dynamics'}`` → float arrays
    with ``step``'s shape; jit-able (close over ``schedules`` or make it static).
    """
    shape = jnp.shape(step)
    return {
        field.name: jnp.broadcast_to(jnp.asarray(getattr(schedules, field.name)(step)), shape)
        for field in dataclasses.fields(schedules)
    }
