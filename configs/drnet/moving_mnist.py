"""DRNet on Moving MNIST with the authors' defaults (drnet-py): 2 coloured digits, 64 px, 20-frame clips.

    python -m drnet_jax.main --config configs/drnet/moving_mnist.py:stage1 --workdir runs/mnist1
    python -m drnet_jax.main --config configs/drnet/moving_mnist.py:stage2 --workdir runs/mnist2 \\
        --config.stage1_workdir runs/mnist1
    python -m drnet_jax.main --config configs/drnet/moving_mnist.py:both --workdir runs/mnist

Stage 1: content dcgan_unet (128-d), pose dcgan (10-d), frames 0..3 of each clip, batch 100,
600 steps × 200 epochs, Adam(0.002, β1 0.5), sd_weight 1e-4. Stage 2: pose LSTM 256×2 on
10 + 10 frames, Adam(2e-4, β1 0.9). moving_mnist/drnet is built into data_dir on first use.
"""

from drnet_jax.config_defaults import base_config

STAGES = {"stage1": 1, "stage2": 2, "both": 0}


def get_config(stage: str = "stage1"):
    c = base_config()
    c.stage = STAGES[stage]
    c.dataset, c.dataset_config = "moving_mnist", "drnet"
    c.image_width, c.channels = 64, 3
    c.content_model, c.pose_model = "dcgan_unet", "dcgan"
    c.content_dim, c.pose_dim = 128, 10
    c.max_step, c.sd_weight, c.sd_nf = 20, 1e-4, 100
    c.frame_selection = "first4"
    c.optimizer, c.lr, c.beta1 = "adam", 0.002, 0.5
    c.batch_size, c.epoch_size, c.niter = 100, 600, 200
    c.n_past, c.n_future, c.rnn_size, c.rnn_layers = 10, 10, 256, 2
    c.stage2.update({"lr": 2e-4, "beta1": 0.9, "niter": 200, "epoch_size": 600})
    return c
