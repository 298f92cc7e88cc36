"""A tiny DRNet for tests and smoke runs (moving_mnist/smoke: 1 digit, 6 frames; built on first use).

    python -m drnet_jax.main --config configs/drnet/tiny.py --workdir runs/drnet_tiny

Full-size 64 px networks (dcgan_unet content, dcgan pose) with small codes, batch 4,
3 epochs of 2 steps per stage; pictures at the end only. Convolutions use XLA's own
kernels: at batch 4 they run about as fast as the CPU 'fast' path and compile in half the time.
"""

from drnet_jax.config_defaults import base_config

STAGES = {"stage1": 1, "stage2": 2, "both": 0}


def get_config(stage: str = "both"):
    c = base_config()
    c.stage = STAGES[stage]
    c.seed = 0
    c.dataset, c.dataset_config = "moving_mnist", "smoke"
    c.image_width, c.channels = 64, 3
    c.content_model, c.pose_model = "dcgan_unet", "dcgan"
    c.content_dim, c.pose_dim, c.sd_nf = 8, 3, 8
    c.rnn_size, c.rnn_layers = 8, 2
    c.max_step = 6
    c.n_past, c.n_future = 2, 3
    c.batch_size, c.epoch_size, c.niter = 4, 2, 3
    c.model_save_interval, c.model_test_interval = 1, 3
    c.log_every_steps = 1
    c.num_test_sequences = 3
    c.gen_horizon, c.gen_chunk = 12, 5
    c.gif_fps = 5
    c.read_threads = 0
    c.conv_impl = "xla"
    c.stage2.update({"niter": 3, "epoch_size": 2})
    return c
