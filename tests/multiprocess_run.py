"""One process of a training run for tests/test_multiprocess.py (stage 1 of a tiny config, 6 steps, batch 4).

    python tests/multiprocess_run.py {vdsm|drnet} WORKDIR DATA_DIR INDEX_FILE [COORDINATOR NUM_PROCESSES PROCESS_ID]

Run with XLA_FLAGS=--xla_force_host_platform_device_count=N for N CPU devices. Writes the record indices of
every batch this process read, in order, as JSON to INDEX_FILE.
"""

import importlib
import json
import pathlib
import sys

TESTS = pathlib.Path(__file__).resolve().parent
sys.path[:1] = [str(TESTS.parent), str(TESTS)]  # this checkout's packages, then the test helpers

from conftest import load_config_file  # noqa: E402

from vdcore import distributed  # noqa: E402


def main(model: str, workdir: str, data_dir: str, index_file: str, *cluster: str) -> None:
    if cluster:
        distributed.join(True, cluster[0], int(cluster[1]), int(cluster[2]))
    train = importlib.import_module(f"{model}_jax.train")
    config = load_config_file(f"configs/{model}/tiny.py", "stage1")
    config.data_dir, config.model_test_interval = data_dir, 0
    if model == "vdsm":
        config.bs = 4
    else:  # SGD: Adam's first step, lr·sign(g), would turn rounding noise in exactly-zero gradients into ±lr
        config.optimizer = "sgd"
        # Batch 8: with 4 clips (one per device) the freshly initialised content encoder's update is ill-conditioned
        # on these mostly black frames: a 1e-7 relative change of the input pixels changes it by 23 %, so runs
        # that only sum in another order (1 vs 4 devices in one process, too) part after the first step.
        config.batch_size = 8
    read = []
    real = train.make_train_batches

    def recording(config, num_devices):
        batches = real(config, num_devices)
        real_next = type(batches).__next__

        class Recording(type(batches)):
            def __next__(self):
                batch = real_next(self)
                read.append(batch["index"].tolist())
                return batch

        batches.__class__ = Recording
        return batches

    train.make_train_batches = recording
    train.train_and_evaluate(config, workdir)
    with open(index_file, "w") as f:
        json.dump(read, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
