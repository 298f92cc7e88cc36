"""vdcore.training (loop bookkeeping shared by both models) and vdcore.run_config."""

import ml_collections
import pytest

from vdcore.run_config import config_from_meta, run_meta, stage_config
from vdcore.training import EpochClock, StepRate


def test_epoch_clock_saves_and_tests_on_interval_epochs_and_the_last_step():
    clock = EpochClock(steps_per_epoch=3, total_steps=11, save_interval=2, test_interval=3)
    events = {step: clock.after(step) for step in range(11)}
    assert [s for s, e in events.items() if e[0]] == [2, 5, 8]  # epochs end after steps 3, 6, 9
    assert [s for s, e in events.items() if e[2]] == [5, 10]  # epoch 2 and the last step
    assert [s for s, e in events.items() if e[3]] == [8, 10]  # epoch 3 and the last step
    assert events[8][1] == 3 and events[10][1] == 3
    no_tests = EpochClock(steps_per_epoch=3, total_steps=6, save_interval=1, test_interval=0)
    assert not any(no_tests.after(step)[3] for step in range(6))


def test_step_rate_counts_ticks_and_restarts():
    rate = StepRate()
    for _ in range(5):
        rate.tick()
    assert rate.rate() > 0
    assert rate.rate() == 0.0


def test_stage_config_applies_stage2_overrides_and_rejects_unknown_fields():
    config = ml_collections.ConfigDict({"lr": 1e-3, "epochs": 5, "stage": 0, "stage2": {"lr": 2e-4}})
    assert stage_config(config, 1).lr == 1e-3 and stage_config(config, 1).stage == 1
    assert stage_config(config, 2).lr == 2e-4 and stage_config(config, 2).epochs == 5
    config.stage2.unknown = 1
    with pytest.raises(ValueError, match="config.stage2.unknown overrides no known config field"):
        stage_config(config, 2)
    with pytest.raises(ValueError, match="stage must be 1 or 2"):
        stage_config(config, 3)


def test_run_meta_round_trips_the_config():
    config = ml_collections.ConfigDict({"lr": 1e-3, "stage": 2})
    meta = run_meta("fmt/1", config, step=25, steps_per_epoch=10, data_state={"pos": 3})
    assert meta == {"format": "fmt/1", "stage": 2, "step": 25, "epoch": 2, "config": config.to_dict(),
                    "data_state": {"pos": 3}}  # fmt: skip
    assert config_from_meta(meta).to_dict() == config.to_dict()


def test_settings_added_after_a_run_was_written_take_their_defaults():
    defaults = ml_collections.ConfigDict({"lr": 1.0, "new": (), "block": {"old": 1, "added": "x"}, "stage": 1})
    meta = {"config": {"lr": 1e-3, "stage": 2, "block": {"old": 5}, "only_stored": 7}}
    assert config_from_meta(meta, defaults).to_dict() == {
        "lr": 1e-3, "new": (), "block": {"old": 5, "added": "x"}, "stage": 2, "only_stored": 7,
    }  # fmt: skip


def test_an_older_vdsm_run_loads_with_the_settings_it_lacks(trained_vdsm_run, tmp_path):
    """A run written before lr_drop_epochs existed: its stored config lacks the field; it still loads."""
    import json
    import shutil

    from vdsm_jax.api import VDSM

    old = tmp_path / "old_run"
    shutil.copytree(trained_vdsm_run / "stage1", old)
    for meta_file in old.glob("checkpoints/*/meta/metadata"):
        meta = json.loads(meta_file.read_text())
        del meta["config"]["lr_drop_epochs"]
        meta_file.write_text(json.dumps(meta))
    model = VDSM.from_checkpoint(old)
    assert model.config.lr_drop_epochs == () and model.stage == 1
