"""Small builders shared by tests."""

import ml_collections

from vdsm_jax.models import VDSMModules


def tiny_modules(rnn_dropout: float = 0.0, conv_impl: str = "auto") -> VDSMModules:
    config = ml_collections.ConfigDict(
        {
            "z_dim": 4,
            "n_e_w": 3,
            "dynamics_dim": 5,
            "rnn_dim": 8,
            "rnn_layers": 2,
            "rnn_dropout": rnn_dropout,
            "nc": 3,
            "encoder_act_slope": 1.0,
            "conv_impl": conv_impl,
        }
    )
    return VDSMModules.from_config(config)
