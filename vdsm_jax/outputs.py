"""What a VDSM run shows every `model_test_interval` epochs, written under <workdir>/outputs/.

For N = config.num_test_sequences fixed test sequences (seeded, from the test split):
- `recon_eE.png`: rows alternate input and reconstruction (stage 2: the original's
  test_sequence path, inferred dynamics with a deterministic latent chain; also a GIF);
- `id_swap_eE.png`: single frames; cell (i, j) decodes frame 0's z of sequence j with the
  identity of sequence i (first row: the pose sources, first column: the identity sources);
- `swap_eE.png` / `.gif`: identity × dynamics swap, N×N sequences, row i·N + j = identity i
  with the dynamics of j (GIF tiles: identity down, dynamics across);
- `samples_eE.png` / `.gif`: unconditional samples from the priors;
- `codes_eE.npz`: identity weights, dynamics codes (stage 2), z_loc, labels, inputs,
  reconstructions and swaps, for evaluation harnesses.
"""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np

from vdcore import images
from vdcore.files import write_npz
from vdcore.train_state import TrainState
from vdcore.training import TestSet
from vdsm_jax.api import VDSM
from vdsm_jax.models import VDSMModules
from vdsm_jax.state import all_params


def write_all(
    config: ml_collections.ConfigDict, modules: VDSMModules, state: TrainState, test: TestSet, workdir: str, epoch: int
) -> dict[str, str]:
    """Write every picture and the code export for this epoch; returns {kind: path}."""
    model = VDSM(modules, all_params(state), config)
    out_dir = os.path.join(workdir, "outputs")
    videos = test.videos
    n, t = videos.shape[:2]
    tag = f"e{epoch:04d}"
    paths: dict[str, str] = {}
    codes = model.encode(videos)

    recon = model.reconstruct(videos)
    pairs = np.stack([videos, recon], axis=1).reshape(2 * n, *videos.shape[1:])
    paths["recon"] = images.save_png(os.path.join(out_dir, f"recon_{tag}.png"), images.video_grid(pairs))
    if model.stage == 2:
        paths["recon_gif"] = images.save_gif(os.path.join(out_dir, f"recon_{tag}.gif"), pairs, config.gif_fps, ncols=2)

    z0 = np.repeat(codes["z_loc"][None, :, :1], n, axis=0).reshape(n * n, 1, -1)
    identity_rows = np.repeat(codes["identity"], n, axis=0)
    swapped_frames = model.decode(z0, identity_rows)[:, 0].reshape(n, n, *videos.shape[2:])
    blank = np.ones_like(videos[0, 0])
    header = np.concatenate([blank[None], videos[:, 0]], axis=0)
    body = np.concatenate([videos[:, 0][:, None], swapped_frames], axis=1)
    grid = np.concatenate([header[None], body], axis=0).reshape((n + 1) * (n + 1), *videos.shape[2:])
    paths["id_swap"] = images.save_png(os.path.join(out_dir, f"id_swap_{tag}.png"), images.image_grid(grid, n + 1))

    id_from = np.repeat(videos, n, axis=0)
    dyn_from = np.tile(videos, (n, 1, 1, 1, 1))
    swaps = model.swap(id_from, dyn_from)
    paths["swap"] = images.save_png(os.path.join(out_dir, f"swap_{tag}.png"), images.video_grid(swaps))
    paths["swap_gif"] = images.save_gif(os.path.join(out_dir, f"swap_{tag}.gif"), swaps, config.gif_fps, ncols=n)

    samples = model.generate(jax.random.key(config.seed + epoch), n, t)
    paths["samples"] = images.save_png(os.path.join(out_dir, f"samples_{tag}.png"), images.video_grid(samples))
    paths["samples_gif"] = images.save_gif(os.path.join(out_dir, f"samples_{tag}.gif"), samples, config.gif_fps)

    exported = {f"code_{k}": v for k, v in codes.items()}
    exported.update({f"label_{k}": np.asarray(v) for k, v in test.labels.items()})
    paths["codes"] = os.path.join(out_dir, f"codes_{tag}.npz")
    write_npz(paths["codes"], inputs=videos, reconstructions=recon, swaps=swaps, samples=samples, **exported)
    return paths
