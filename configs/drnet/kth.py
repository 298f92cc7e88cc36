"""DRNet on KTH actions (grey frames, persons 1-20 train, 21-25 test).

The argument is a comma-separated list, in any order, of
  64 | 128                              frame size (dataset kth/kth64 or kth/kth128; default 64)
  stage1 | stage2 | both                which stage(s) (default stage1)
  content=vgg_unet | content=dcgan_unet | content=dcgan    (default vgg_unet)
  pose=resnet | pose=dcgan              (default resnet)
e.g.
    python -m data_prep.build kth --config kth128 --data_dir data --manual_dir path/to/kth
    python -m drnet_jax.main --config configs/drnet/kth.py:128 --workdir runs/kth128_1
    python -m drnet_jax.main --config configs/drnet/kth.py:128,stage2 --workdir runs/kth128_2 \\
        --config.stage1_workdir runs/kth128_1
    python -m drnet_jax.main --config configs/drnet/kth.py:64,content=dcgan_unet,pose=dcgan --workdir runs/kth64

Frames: four random frames of a random 20-frame window per clip (frame_selection 'random').
The originals publish no KTH command line beyond `--dataset kth --image_width 128`; every
other value is the authors' default (content 128-d, pose 10-d, batch 100, Adam 0.002 / β1 0.5,
sd_weight 1e-4; stage 2: LSTM 256×2, 10 + 10 frames, Adam 2e-4 / β1 0.9). The vgg_unet content
and ResNet-18 pose encoders are the paper's KTH choice.
"""

from drnet_jax.config_defaults import base_config

STAGES = {"stage1": 1, "stage2": 2, "both": 0}
SIZES = {"64": ("kth64", 64), "128": ("kth128", 128)}
CONTENT_MODELS = ("vgg_unet", "dcgan_unet", "dcgan")
POSE_MODELS = ("resnet", "dcgan")


def _parse(arg: str) -> tuple[str, str, str, str]:
    size, stage, content, pose = "64", "stage1", "vgg_unet", "resnet"
    for token in filter(None, (t.strip() for t in arg.split(","))):
        if token in SIZES:
            size = token
        elif token in STAGES:
            stage = token
        elif token.startswith("content=") and token[8:] in CONTENT_MODELS:
            content = token[8:]
        elif token.startswith("pose=") and token[5:] in POSE_MODELS:
            pose = token[5:]
        else:
            raise ValueError(
                f"kth.py: unknown argument {token!r}; use 64|128, stage1|stage2|both, "
                f"content={'|'.join(CONTENT_MODELS)}, pose={'|'.join(POSE_MODELS)}"
            )
    return size, stage, content, pose


def get_config(arg: str = "64"):
    size, stage, content, pose = _parse(arg)
    c = base_config()
    c.stage = STAGES[stage]
    c.dataset, (c.dataset_config, c.image_width) = "kth", SIZES[size]
    c.channels = 1
    c.content_model, c.pose_model = content, pose
    c.content_dim, c.pose_dim = 128, 10
    c.max_step, c.sd_weight, c.sd_nf = 20, 1e-4, 100
    c.frame_selection = "random"
    c.optimizer, c.lr, c.beta1 = "adam", 0.002, 0.5
    c.batch_size, c.epoch_size, c.niter = 100, 600, 200
    c.n_past, c.n_future, c.rnn_size, c.rnn_layers = 10, 10, 256, 2
    c.stage2.update({"lr": 2e-4, "beta1": 0.9, "niter": 200, "epoch_size": 600})
    return c
