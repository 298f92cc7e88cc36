"""The VDSM schedules equal the original per-epoch arrays at every epoch and every step inside it.

The reference arrays are built here the way the original builds them (the training script of
github.com/matthewvowels1/DisentanglingSequences), independently of vdsm_jax.schedules:
a NumPy cosine loop, concatenation with the constant block and reversal for the
ramps; scipy's interp1d(kind='quadratic') followed by np.clip for anneal_t.
"""

from __future__ import annotations

import dataclasses
import math
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy.interpolate import interp1d

from vdsm_jax import schedules as S

F32_EPS = float(np.finfo(np.float32).eps)


def original_cosine_array(start: float, end: float, frac: float, epochs: int, dynamics: bool = False) -> np.ndarray:
    """The original's per-epoch array (float64), length m + n (not always `epochs`)."""
    n = int(np.ceil(epochs // frac)) if dynamics else int(np.ceil(epochs / frac))
    m = int((frac - 1) * epochs // frac)
    ramp = []
    for k in range(n):
        ramp.append(start + (end - start) * (np.cos(np.pi * k / (epochs / frac)) + 1) / 2)
    return np.concatenate([np.ones(m) * end, np.array(ramp, dtype=np.float64)])[::-1]


def original_anneal_t_array(start, mid1, mid2, end, midfrac1, midfrac2, epochs) -> np.ndarray:
    x = [0, epochs * midfrac1, epochs * midfrac2, epochs - 1]
    y = [start, mid1, mid2, end]
    return np.clip(interp1d(x, y, kind="quadratic")(np.arange(epochs)), 0.005, 80)


def held(array: np.ndarray, epochs: int) -> np.ndarray:
    """The original's value per epoch 0..epochs-1; past its end, its last value (our documented choice)."""
    return np.array([array[min(e, len(array) - 1)] for e in range(epochs)])


def steps_for(epochs: int, steps_per_epoch: int) -> np.ndarray:
    """(epochs, 3) steps: first, middle and last step of every epoch."""
    base = np.arange(epochs)[:, None] * steps_per_epoch
    return (base + np.array([0, steps_per_epoch // 2, steps_per_epoch - 1])[None, :]).astype(np.int32)


def assert_ramp_matches(schedule, expected: np.ndarray, steps_per_epoch: int, scale: float) -> None:
    steps = steps_for(len(expected), steps_per_epoch)
    got = np.asarray(schedule(jnp.asarray(steps)))
    assert got.shape == steps.shape
    assert got.dtype == np.float32
    want = np.broadcast_to(expected[:, None], steps.shape)
    np.testing.assert_allclose(got, want, rtol=0, atol=8 * F32_EPS * max(scale, 1.0))


# README configurations (vdsm.md, "Published hyper-parameters"). vdsm.md does not give
# anneal_frac_dynamics for any run: we use 3 (the anneal_id frac), which also exercises the
# ceil(E // frac) quirk at 250 and 200 epochs. Stage 2 lists no anneal_id values nor
# anneal_t midfracs and no temp_id frac: those are taken from MUG stage 1 (temp_id frac 2).
# Sprites lists only seq_len, n_e_w, epochs and bs_per_epoch: all schedule values are MUG's,
# with bs_per_epoch 50 for both stages.
MUG_STAGE1 = dict(
    epochs=250,
    bs_per_epoch=50,
    temp_id_start=1.0,
    temp_id_end=10.0,
    temp_id_frac=2,
    anneal_start_id=0.1,
    anneal_end_id=1.0,
    anneal_frac_id=3,
    anneal_start_t=30.0,
    anneal_mid_t1=0.2,
    anneal_mid_t2=0.4,
    anneal_end_t=1.0,
    anneal_t_midfrac1=0.5,
    anneal_t_midfrac2=0.8,
    anneal_start_dynamics=0.1,
    anneal_end_dynamics=0.6,
    anneal_frac_dynamics=3,
)
MUG_STAGE2 = dict(
    MUG_STAGE1,
    epochs=200,
    bs_per_epoch=2,
    temp_id_start=10.0,
    temp_id_end=10.0,
    anneal_start_t=0.1,
    anneal_mid_t1=0.4,
    anneal_mid_t2=0.4,
    anneal_end_t=1.0,
    anneal_end_dynamics=1.0,
)
SPRITES_STAGE1 = dict(MUG_STAGE1, epochs=200, bs_per_epoch=50)
SPRITES_STAGE2 = dict(MUG_STAGE2, epochs=200, bs_per_epoch=50)
README_CONFIGS = {
    "mug_stage1": MUG_STAGE1,
    "mug_stage2": MUG_STAGE2,
    "sprites_stage1": SPRITES_STAGE1,
    "sprites_stage2": SPRITES_STAGE2,
}


def expected_values(c: dict) -> dict[str, np.ndarray]:
    e = c["epochs"]
    return {
        "temp_id": held(original_cosine_array(c["temp_id_start"], c["temp_id_end"], c["temp_id_frac"], e), e),
        "anneal_id": held(original_cosine_array(c["anneal_start_id"], c["anneal_end_id"], c["anneal_frac_id"], e), e),
        "anneal_dynamics": held(
            original_cosine_array(
                c["anneal_start_dynamics"], c["anneal_end_dynamics"], c["anneal_frac_dynamics"], e, dynamics=True
            ),
            e,
        ),
        "anneal_t": original_anneal_t_array(
            c["anneal_start_t"],
            c["anneal_mid_t1"],
            c["anneal_mid_t2"],
            c["anneal_end_t"],
            c["anneal_t_midfrac1"],
            c["anneal_t_midfrac2"],
            e,
        ),
    }


@pytest.mark.parametrize("name", sorted(README_CONFIGS))
def test_readme_configs_match_original_arrays(name):
    c = README_CONFIGS[name]
    scheds = S.make_schedules(ml_collections.ConfigDict(c))
    steps = steps_for(c["epochs"], c["bs_per_epoch"])
    got = S.values_at(scheds, jnp.asarray(steps))
    want = expected_values(c)
    for key in ("temp_id", "anneal_id", "anneal_dynamics"):
        scale = max(abs(v) for v in np.asarray(want[key]))
        np.testing.assert_allclose(
            np.asarray(got[key]),
            np.broadcast_to(want[key][:, None], steps.shape),
            rtol=0,
            atol=8 * F32_EPS * max(scale, 1.0),
            err_msg=f"{name}: {key}",
        )
    # anneal_t is a lookup of the float64 table: exactly its float32 rounding.
    np.testing.assert_array_equal(
        np.asarray(got["anneal_t"]), np.broadcast_to(want["anneal_t"].astype(np.float32)[:, None], steps.shape)
    )


def test_readme_shapes_of_the_schedules():
    """Sanity of what the README schedules look like, so a wrong reference would be noticed too."""
    c = MUG_STAGE1
    want = expected_values(c)
    temp = want["temp_id"]
    assert 1.0 <= temp[0] < 1.01 and temp[-1] == 10.0
    assert np.all(np.diff(temp) >= -1e-12)
    n = math.ceil(250 / 2)
    assert np.all(temp[n - 1 :] == 10.0) and temp[n - 2] < 10.0
    assert want["anneal_t"][0] == 30.0 and math.isclose(want["anneal_t"][-1], 1.0)
    stage2 = expected_values(MUG_STAGE2)
    assert np.all(stage2["temp_id"] == 10.0)
    got = S.make_schedules(MUG_STAGE2).temp_id(jnp.arange(0, 400, 7))
    np.testing.assert_array_equal(np.asarray(got), 10.0)


def test_readme_dynamics_quirk_is_reproduced():
    """With frac 3 the original dynamics array is one epoch short and starts at a different cosine point."""
    plain = original_cosine_array(0.1, 0.6, 3, 250)
    quirk = original_cosine_array(0.1, 0.6, 3, 250, dynamics=True)
    assert len(plain) == 250 and len(quirk) == 249
    with pytest.raises(IndexError):
        quirk[249]  # what the original does in its last epoch
    scheds = S.make_schedules(MUG_STAGE1)
    got = np.asarray(scheds.anneal_dynamics(jnp.arange(250) * 50))
    np.testing.assert_allclose(got, held(quirk, 250), atol=8 * F32_EPS)
    assert got[-1] == np.float32(0.6)
    assert abs(got[0] - plain[0]) > 1e-4


ODD_CASES = [
    (epochs, frac, dynamics, spe)
    for epochs in (7, 10, 33)
    for frac in (1.5, 2, 3)
    for dynamics in (False, True)
    for spe in (1, 3)
]


@pytest.mark.parametrize("epochs,frac,dynamics,spe", ODD_CASES)
def test_cosine_ramp_odd_epochs_and_fracs(epochs, frac, dynamics, spe):
    start, end = 0.25, 4.0
    original = original_cosine_array(start, end, frac, epochs, dynamics)
    sched = S.cosine_ramp_schedule(start, end, frac, epochs, spe, dynamics_quirk=dynamics)
    assert_ramp_matches(sched, held(original, epochs), spe, scale=4.0)
    # Epochs beyond training hold the last array value.
    far = np.asarray(sched(jnp.asarray([epochs * spe, 10 * epochs * spe])))
    np.testing.assert_allclose(far, original[-1], atol=8 * F32_EPS * 4)


@pytest.mark.parametrize(
    "epochs,frac,plain_len,quirk_len",
    [
        (7, 2, 7, 6),
        (7, 1.5, 7, 6),
        (10, 1.5, 10, 9),
        (10, 3, 10, 9),
        (33, 2, 33, 32),
        (33, 1.5, 33, 33),
        (33, 3, 33, 33),
    ],
)
def test_array_lengths_of_the_original(epochs, frac, plain_len, quirk_len):
    """ceil(E // frac) differs from ceil(E / frac) exactly when frac does not divide E."""
    assert len(original_cosine_array(1, 2, frac, epochs)) == plain_len
    assert len(original_cosine_array(1, 2, frac, epochs, dynamics=True)) == quirk_len
    m, n = S.cosine_ramp_array_length(epochs, frac)
    mq, nq = S.cosine_ramp_array_length(epochs, frac, dynamics_quirk=True)
    assert (m + n, mq + nq) == (plain_len, quirk_len)


def test_quirk_changes_values_where_frac_does_not_divide():
    plain = S.cosine_ramp_schedule(0.0, 1.0, 2, 7, 1)
    quirk = S.cosine_ramp_schedule(0.0, 1.0, 2, 7, 1, dynamics_quirk=True)
    # plain: n = 4, epoch 0 = r_3; quirk: n = 3, epoch 0 = r_2 (cos argument still uses 7/2).
    np.testing.assert_allclose(float(plain(0)), 0.5 * (math.cos(math.pi * 3 / 3.5) + 1), atol=1e-6)
    np.testing.assert_allclose(float(quirk(0)), 0.5 * (math.cos(math.pi * 2 / 3.5) + 1), atol=1e-6)
    same = S.cosine_ramp_schedule(0.0, 1.0, 2, 8, 1)
    same_q = S.cosine_ramp_schedule(0.0, 1.0, 2, 8, 1, dynamics_quirk=True)
    np.testing.assert_array_equal(np.asarray(same(jnp.arange(8))), np.asarray(same_q(jnp.arange(8))))


@pytest.mark.parametrize(
    "epochs,frac,length",
    [
        (17, 1.7, 16),  # float rounding: (0.7*17)//1.7 == 6.0, not 7 -> one short; last epoch held
        (57, 2.28, 58),  # float rounding: ceil(57/2.28) == 26 -> one extra entry, never reached
        (5, 1, 5),  # frac 1: no constant block (m = 0), pure ramp ending at r_0
        (10, 1.1, 10),  # m = 0 as well: (0.1*10)//1.1 == 0
    ],
)
def test_float_rounding_lengths(epochs, frac, length):
    start, end = 1.0, 10.0
    original = original_cosine_array(start, end, frac, epochs)
    assert len(original) == length
    sched = S.cosine_ramp_schedule(start, end, frac, epochs, 2)
    assert_ramp_matches(sched, held(original, epochs), 2, scale=10.0)
    np.testing.assert_allclose(float(sched(10**6)), original[-1], atol=8 * F32_EPS * 10)


def test_constant_ramp_when_start_equals_end():
    sched = S.cosine_ramp_schedule(10, 10, 2, 200, 2)
    np.testing.assert_array_equal(np.asarray(sched(jnp.arange(0, 500, 3))), np.float32(10.0))


def test_scalar_and_negative_steps():
    sched = S.cosine_ramp_schedule(1.0, 10.0, 2, 10, 5)
    original = original_cosine_array(1.0, 10.0, 2, 10)
    assert float(sched(-3)) == pytest.approx(original[0], abs=1e-5)
    assert float(sched(np.int64(12))) == pytest.approx(original[2], abs=1e-5)
    assert jnp.shape(sched(7)) == ()


ANNEAL_T_CASES = [
    (30.0, 0.2, 0.4, 1.0, 0.5, 0.8, 7),
    (30.0, 0.2, 0.4, 1.0, 0.5, 0.8, 10),
    (0.1, 0.4, 0.4, 1.0, 0.2, 0.6, 33),
    (100.0, 0.01, 0.001, 0.5, 0.3, 0.6, 33),  # hits both clip bounds
    (2.0, 5.0, 1.0, 3.0, 0.25, 0.5, 10),
]


@pytest.mark.parametrize("case", ANNEAL_T_CASES)
@pytest.mark.parametrize("spe", [1, 4])
def test_anneal_t_odd_epochs(case, spe):
    *values, epochs = case
    original = original_anneal_t_array(*values, epochs)
    table = S.anneal_t_table(*values, epochs)
    np.testing.assert_array_equal(table, original)
    sched = S.anneal_t_schedule(*values, epochs, spe)
    steps = steps_for(epochs, spe)
    np.testing.assert_array_equal(
        np.asarray(sched(jnp.asarray(steps))), np.broadcast_to(original.astype(np.float32)[:, None], steps.shape)
    )
    assert float(sched(epochs * spe * 5)) == np.float32(original[-1])


def test_anneal_t_clip_case_really_clips():
    original = original_anneal_t_array(100.0, 0.01, 0.001, 0.5, 0.3, 0.6, 33)
    assert original.max() == 80.0 and original.min() == 0.005


def test_exact_in_float64():
    """Under x64 the closed-form ramp agrees with the float64 original to ~1e-12 and anneal_t exactly."""
    with jax.enable_x64(True):
        scheds = S.make_schedules(MUG_STAGE1)
        got = S.values_at(scheds, jnp.arange(250) * 50 + 49)
        want = expected_values(MUG_STAGE1)
        for key in ("temp_id", "anneal_id", "anneal_dynamics"):
            assert got[key].dtype == jnp.float64
            np.testing.assert_allclose(np.asarray(got[key]), want[key], rtol=0, atol=1e-12, err_msg=key)
        np.testing.assert_array_equal(np.asarray(got["anneal_t"]), want["anneal_t"])


def test_values_at_is_jittable():
    scheds = S.make_schedules(ml_collections.ConfigDict(MUG_STAGE1))
    jitted = jax.jit(lambda step: S.values_at(scheds, step))
    static = jax.jit(S.values_at, static_argnums=0)
    want = expected_values(MUG_STAGE1)
    for epoch in (0, 1, 83, 124, 125, 249, 300):
        step = jnp.asarray(epoch * 50 + 17, jnp.int32)
        out = jitted(step)
        out_static = static(scheds, step)
        assert set(out) == {"temp_id", "anneal_id", "anneal_t", "anneal_dynamics"}
        for key, value in out.items():
            assert value.shape == () and value.dtype == jnp.float32
            assert float(value) == float(out_static[key])
            np.testing.assert_allclose(float(value), want[key][min(epoch, 249)], rtol=2e-6, atol=1e-6, err_msg=key)


def test_constant_schedule():
    sched = S.constant_schedule(10)
    assert float(sched(0)) == 10.0 and float(sched(123456)) == 10.0
    with pytest.raises(ValueError, match="value"):
        S.constant_schedule(float("nan"))


def test_config_with_attribute_access_and_mapping():
    @dataclasses.dataclass
    class Cfg:
        pass

    obj = Cfg()
    for k, v in SPRITES_STAGE2.items():
        setattr(obj, k, v)
    for config in (obj, types.SimpleNamespace(**SPRITES_STAGE2), dict(SPRITES_STAGE2)):
        out = S.values_at(S.make_schedules(config), 60 * 50)
        assert float(out["temp_id"]) == 10.0


@pytest.mark.parametrize("field", ["anneal_mid_t2", "bs_per_epoch", "anneal_frac_dynamics"])
def test_missing_field_is_named(field):
    config = ml_collections.ConfigDict({k: v for k, v in MUG_STAGE1.items() if k != field})
    with pytest.raises(ValueError, match=f"missing.*{field}"):
        S.make_schedules(config)


@pytest.mark.parametrize("midfrac2", [0.5, 0.3])
def test_midfrac2_not_above_midfrac1(midfrac2):
    config = dict(MUG_STAGE1, anneal_t_midfrac1=0.5, anneal_t_midfrac2=midfrac2)
    with pytest.raises(ValueError, match="anneal_t_midfrac2") as info:
        S.make_schedules(config)
    assert "anneal_t_midfrac1" in str(info.value) and "midfrac2 > midfrac1" in str(info.value)
    with pytest.raises(ValueError, match="midfrac2 > midfrac1"):
        S.anneal_t_schedule(30, 0.2, 0.4, 1, 0.5, midfrac2, 250, 50)


@pytest.mark.parametrize(
    "epochs,midfrac1,midfrac2",
    [(5, 0.5, 0.8), (4, 0.25, 0.9), (10, 0.0, 0.5), (1, 0.2, 0.5)],
)
def test_anneal_t_knots_strictly_increasing(epochs, midfrac1, midfrac2):
    with pytest.raises(ValueError, match="strictly increasing"):
        S.anneal_t_schedule(30, 0.2, 0.4, 1, midfrac1, midfrac2, epochs, 1)


@pytest.mark.parametrize(
    "override,match",
    [
        ({"temp_id_frac": 0.5}, r"temp_id schedule.*temp_id_frac=0\.5.*frac must be >= 1"),
        ({"anneal_frac_id": float("inf")}, "anneal_id schedule.*anneal_frac_id"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"epochs": 2.5}, "epochs must be a positive integer"),
        ({"bs_per_epoch": 0}, "steps_per_epoch must be a positive integer"),
        ({"anneal_start_t": "hot"}, "anneal_t schedule.*anneal_start_t='hot'"),
        ({"epochs": 2, "anneal_frac_dynamics": 3, "anneal_t_midfrac1": 0.1, "anneal_t_midfrac2": 0.2}, "no entries"),
    ],
)
def test_bad_values_raise_clear_errors(override, match):
    with pytest.raises(ValueError, match=match):
        S.make_schedules(dict(MUG_STAGE1, **override))
