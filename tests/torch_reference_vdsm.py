"""A PyTorch expression of the original VDSM networks, for the parity tests (CI has no copy of the original).

Written from the project's reference description, with the original's module and parameter names and layouts;
the layouts the description left open were settled by reading the original (github.com/matthewvowels1/
DisentanglingSequences, `VDSM_Seq.test_sequence` / `guide`: the decoder's initial states are viewed (B, L, H) and
permuted to (L, B, H)), and `VDSMSeq.test_sequence` keeps that method's per-sequence loop form.
`VDSMEncDec(...).state_dict()` / `VDSMSeq(...).state_dict()` have exactly the keys and shapes of the original's
`VDSM_EncDec` / `VDSM_Seq` checkpoints. Shapes: B sequences, T frames, frames NCHW (3, 64, 64) in [0, 1].
The mixture-of-experts decoder blends each sequence's kernels in a Python loop over the batch, as the original.
Not a test module (no `test_` prefix).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class BlurPool(nn.Module):
    """antialiased_cnns BlurPool(C, filt_size=4, stride=2): reflect pad (1, 2, 1, 2), fixed depthwise filter."""

    def __init__(self, channels: int, stride: int = 2) -> None:
        super().__init__()
        self.channels, self.stride = channels, stride
        taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
        filt = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (filt / filt.sum())[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 2, 1, 2), mode="reflect"), self.filt, stride=self.stride, groups=self.channels)


class Encoder(nn.Module):
    """`enc`: frames (N, nc, 64, 64) → z_loc, z_scale (N, Z), id_loc, id_scale (N, E) (before id_layers)."""

    def __init__(self, z_dim: int, n_e_w: int, nc: int = 3, act_slope: float = 1.0) -> None:
        super().__init__()
        self.z_dim, self.n_e_w = z_dim, n_e_w
        layers: list[nn.Module] = []
        channels = (nc, 32, 32, 64, 64, 256)
        for k in range(5):
            last = k == 4
            layers += [nn.Conv2d(channels[k], channels[k + 1], 4, 1, 0 if last else 1), nn.LeakyReLU(act_slope)]
            if not last:
                layers.append(BlurPool(channels[k + 1]))
        self.encoder = nn.Sequential(*layers)  # convs at 0, 3, 6, 9, 12; BlurPools at 2, 5, 8, 11
        self.muvar = nn.Linear(256, 2 * z_dim)
        self.BC_1 = nn.Linear(256, 128)
        self.BC_2 = nn.Linear(128, 2 * n_e_w)

    def forward(self, x: torch.Tensor):
        h = self.encoder(x).view(-1, 256)
        muvar = self.muvar(h)
        ids = self.BC_2(F.leaky_relu(self.BC_1(h), 0.01))
        return (
            muvar[:, : self.z_dim],
            F.softplus(muvar[:, self.z_dim :]),
            ids[:, : self.n_e_w],
            F.softplus(ids[:, self.n_e_w :]),
        )


class IDLayers(nn.Module):
    def __init__(self, n_e_w: int) -> None:
        super().__init__()
        self.loc_layer = nn.Linear(n_e_w, n_e_w)
        self.scale_layer = nn.Linear(n_e_w, n_e_w)

    def forward(self, id_loc: torch.Tensor, id_scale: torch.Tensor):
        """Per-frame (B, T, E) each → per-sequence (B, E) each (mean over time)."""
        loc = F.leaky_relu(self.loc_layer(id_loc), 0.01)
        scale = F.softplus(self.scale_layer(id_scale))
        return loc.mean(1), scale.mean(1)


class MoEDecoder(nn.Module):
    """`dec`: E experts of five transposed convs; parameters EW1..5 (E, Cin, Cout, 4, 4) and EB1..5 (E, Cout)."""

    def __init__(self, z_dim: int, n_e_w: int, nc: int = 3) -> None:
        super().__init__()
        self.z_dim, self.n_e_w = z_dim, n_e_w
        channels = (z_dim + n_e_w, 512, 256, 128, 64, nc)
        for k in range(5):
            weight = nn.Parameter(torch.empty(n_e_w, channels[k], channels[k + 1], 4, 4))
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
            setattr(self, f"EW{k + 1}", weight)
            setattr(self, f"EB{k + 1}", nn.Parameter(torch.zeros(n_e_w, channels[k + 1])))

    def forward(self, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """z (B, T, Z), blend weights w (B, E) → pixel probabilities (B, T, nc, 64, 64)."""
        outputs = []
        for b in range(z.shape[0]):  # every sequence has its own blended kernels
            x = torch.cat([z[b], w[b].expand(z.shape[1], self.n_e_w)], dim=-1)[:, :, None, None]
            for k in range(5):
                kernel = torch.einsum("e,eiokl->iokl", w[b], getattr(self, f"EW{k + 1}"))
                bias = w[b] @ getattr(self, f"EB{k + 1}")
                x = F.conv_transpose2d(x, kernel, bias, stride=1 if k == 0 else 2, padding=0 if k == 0 else 1)
                x = torch.sigmoid(x) if k == 4 else F.leaky_relu(x, 0.01)
            outputs.append(x)
        return torch.stack(outputs)


def decode_by_linearity(dec: MoEDecoder, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """What `dec(z, w)` computes, for many sequences at once (Monte-Carlo particles): (B, T, Z), (B, E) → probs.

    A transposed conv is linear in its kernel, so conv_T(x, sum_e w_e K_e) = conv_T(concat_e(w_e x), stack_e K_e):
    one batched call per layer on E times the input channels instead of a Python loop of B small calls.
    """
    b, t = z.shape[:2]
    e = dec.n_e_w
    frame_w = w[:, None].expand(b, t, e).reshape(b * t, e)
    x = torch.cat([z.reshape(b * t, -1), frame_w], -1)[:, :, None, None]
    for k in range(5):
        kernels, biases = getattr(dec, f"EW{k + 1}"), getattr(dec, f"EB{k + 1}")
        _, cin, cout = kernels.shape[:3]
        scaled = (frame_w[:, :, None, None, None] * x[:, None]).reshape(b * t, e * cin, *x.shape[2:])
        x = F.conv_transpose2d(
            scaled, kernels.reshape(e * cin, cout, 4, 4), stride=1 if k == 0 else 2, padding=0 if k == 0 else 1
        )
        x = x + (frame_w @ biases)[:, :, None, None]
        x = torch.sigmoid(x) if k == 4 else F.leaky_relu(x, 0.01)
    return x.reshape(b, t, *x.shape[1:])


class VDSMEncDec(nn.Module):
    """Stage 1 (`VDSM_EncDec`); `ID_loc_layer` / `ID_scale_layer` exist in the checkpoints but are unused."""

    def __init__(self, z_dim: int, n_e_w: int, nc: int = 3, act_slope: float = 1.0) -> None:
        super().__init__()
        self.enc = Encoder(z_dim, n_e_w, nc, act_slope)
        self.dec = MoEDecoder(z_dim, n_e_w, nc)
        self.id_layers = IDLayers(n_e_w)
        self.ID_loc_layer = nn.Linear(n_e_w, n_e_w)
        self.ID_scale_layer = nn.Linear(n_e_w, n_e_w)


class Seq2SeqEncoder(nn.Module):
    """`seq2seq_enc`: the bidirectional LSTM `rnn` and the (unused) `fc_out` head."""

    def __init__(self, z_dim: int, rnn_dim: int, rnn_layers: int, dropout: float) -> None:
        super().__init__()
        self.rnn = nn.LSTM(z_dim, rnn_dim, rnn_layers, dropout=dropout, bidirectional=True)
        self.fc_out = nn.Sequential(nn.Linear(2 * rnn_dim, z_dim))


class Combiner(nn.Module):
    def __init__(self, z_dim: int, rnn_dim: int, dynamics_dim: int) -> None:
        super().__init__()
        self.h_rnn_to_hidden = nn.Linear(rnn_dim + dynamics_dim, rnn_dim)
        self.lin_z_to_hidden = nn.Linear(z_dim, rnn_dim)
        self.lin_hidden_to_loc = nn.Linear(rnn_dim, z_dim)
        self.lin_hidden_to_scale = nn.Linear(rnn_dim, z_dim)

    def forward(self, lstm_out: torch.Tensor, dz: torch.Tensor, z_prev: torch.Tensor):
        h = F.leaky_relu(self.h_rnn_to_hidden(torch.cat([lstm_out, dz], -1)), 0.01)
        hc = 0.5 * (torch.tanh(self.lin_z_to_hidden(z_prev)) + h)
        return self.lin_hidden_to_loc(hc), F.softplus(self.lin_hidden_to_scale(hc))


class GatedTransition(nn.Module):
    def __init__(self, z_dim: int, dynamics_dim: int, transition_dim: int) -> None:
        super().__init__()
        self.lin_gate_z_to_hidden = nn.Linear(z_dim + dynamics_dim, transition_dim)
        self.lin_gate_hidden_to_z = nn.Linear(transition_dim, z_dim)
        self.lin_proposed_mean_z_to_hidden = nn.Linear(z_dim + dynamics_dim, transition_dim)
        self.lin_proposed_mean_hidden_to_z = nn.Linear(transition_dim, z_dim)
        self.lin_sig = nn.Linear(z_dim, z_dim)
        self.lin_z_to_loc = nn.Linear(z_dim, z_dim)
        for layer in self.children():
            nn.init.kaiming_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, z_prev: torch.Tensor, dz: torch.Tensor):
        zd = torch.cat([z_prev, dz], -1)
        gate = torch.sigmoid(self.lin_gate_hidden_to_z(F.relu(self.lin_gate_z_to_hidden(zd))))
        proposed = self.lin_proposed_mean_hidden_to_z(F.relu(self.lin_proposed_mean_z_to_hidden(zd)))
        loc = (1 - gate) * self.lin_z_to_loc(z_prev) + gate * proposed
        return loc, F.softplus(self.lin_sig(F.relu(proposed)))


class VDSMSeq(nn.Module):
    """Stage 2 (`VDSM_Seq`): frozen `image_enc` / `image_dec`, `id_layers` and the sequence networks."""

    def __init__(
        self,
        z_dim: int,
        n_e_w: int,
        dynamics_dim: int,
        rnn_dim: int,
        rnn_layers: int,
        rnn_dropout: float = 0.0,
        nc: int = 3,
        act_slope: float = 1.0,
    ) -> None:
        super().__init__()
        self.z_dim, self.n_e_w, self.dynamics_dim = z_dim, n_e_w, dynamics_dim
        self.rnn_dim, self.rnn_layers = rnn_dim, rnn_layers
        self.image_enc = Encoder(z_dim, n_e_w, nc, act_slope)
        self.image_dec = MoEDecoder(z_dim, n_e_w, nc)
        self.id_layers = IDLayers(n_e_w)
        self.seq2seq_enc = Seq2SeqEncoder(z_dim, rnn_dim, rnn_layers, rnn_dropout)
        self.seq2seq_dec = nn.LSTM(rnn_dim, rnn_dim, rnn_layers)
        self.comb = Combiner(z_dim, rnn_dim, dynamics_dim)
        self.transitions = GatedTransition(z_dim, dynamics_dim, rnn_dim)
        self.h_0_enc = nn.Parameter(torch.zeros(1, 1, rnn_dim))
        self.c_0_enc = nn.Parameter(torch.zeros(1, 1, rnn_dim))
        self.c_0_dec = nn.Parameter(torch.zeros(1, 1, rnn_dim))
        self.z_q_0 = nn.Parameter(torch.zeros(z_dim))
        self.dec_inp_0 = nn.Parameter(torch.zeros(rnn_dim))
        self.cats = nn.Linear(2 * rnn_layers * rnn_dim, 2 * dynamics_dim)
        self.dz_to_dec_h = nn.Linear(dynamics_dim, rnn_layers * rnn_dim)
        self.dz_to_dec_c = nn.Linear(dynamics_dim, rnn_layers * rnn_dim)

    def dynamics_posterior(self, z_loc: torch.Tensor):
        """Per-frame z_loc (B, T, Z) → dz_loc, dz_scale (B, D)."""
        b = z_loc.shape[0]
        shape = (2 * self.rnn_layers, b, self.rnn_dim)
        initial = (self.h_0_enc.expand(shape).contiguous(), self.c_0_enc.expand(shape).contiguous())
        _, (h_n, _) = self.seq2seq_enc.rnn(z_loc.permute(1, 0, 2), initial)
        h = self.cats(h_n.permute(1, 0, 2).reshape(b, -1))
        return F.leaky_relu(h[:, : self.dynamics_dim], 0.01), F.softplus(h[:, self.dynamics_dim :])

    def dynamics_rnn(self, dz: torch.Tensor, seq_len: int) -> torch.Tensor:
        """dz (..., B, D) → the decoder LSTM's outputs (..., B, T, H); step 0's input is dec_inp_0, then its own
        output. The initial states are Linear(dz) (N, L·H) viewed as (N, L, H) and permuted to (L, N, H), as the
        original's `dz_to_dec_h(dz).view(-1, L, H).permute(1, 0, 2)`: layer l of sequence n starts from the l-th
        H-chunk of sequence n's own vector. Leading axes (Monte-Carlo particles) are flattened into N."""
        lead, b = dz.shape[:-2], dz.shape[-2]
        n = math.prod(lead) * b

        def initial(linear: nn.Linear) -> torch.Tensor:
            return linear(dz.reshape(n, -1)).view(-1, self.rnn_layers, self.rnn_dim).permute(1, 0, 2).contiguous()

        h, c = initial(self.dz_to_dec_h), initial(self.dz_to_dec_c)
        x = self.dec_inp_0.expand(1, n, self.rnn_dim)
        outputs = []
        for _ in range(seq_len):
            x, (h, c) = self.seq2seq_dec(x, (h, c))
            outputs.append(x[0])
        return torch.stack(outputs, 1).reshape(*lead, b, seq_len, self.rnn_dim)

    def latent_chain(self, dz: torch.Tensor, seq_len: int) -> torch.Tensor:
        """The test-time chain (`test_sequence`): z_t = combiner loc, z_prev ← that loc → (B, T, Z)."""
        lstm_out = self.dynamics_rnn(dz, seq_len)
        z_prev = self.z_q_0.expand(dz.shape[0], self.z_dim)
        zs = []
        for t in range(seq_len):
            z_prev, _ = self.comb(lstm_out[:, t], dz, z_prev)
            zs.append(z_prev)
        return torch.stack(zs, 1)

    def test_sequence(self, sequence: torch.Tensor, seq_len: int) -> torch.Tensor:
        """The original's `VDSM_Seq.test_sequence`, in its own form: time-major z_loc (T, B, Z) → futures (seq_len,
        B, Z). dz_loc from the bidirectional encoder's final states (permuted to batch-major, flattened), the
        decoder's initial states viewed (B, L, H) and permuted to (L, B, H), then one Python loop per sequence
        (state h_dec[:, i], batch of one) and per step, z_prev ← the combiner's loc. Independent of `dynamics_rnn`
        / `latent_chain`, which compute the same for a whole batch at once."""
        bs = sequence.shape[1]
        shape = (2 * self.rnn_layers, bs, self.rnn_dim)
        initial = (self.h_0_enc.expand(shape).contiguous(), self.c_0_enc.expand(shape).contiguous())
        _, (h_n, _) = self.seq2seq_enc.rnn(sequence, initial)
        summary = h_n.permute(1, 0, 2).contiguous().view(bs, 2 * self.rnn_layers * self.rnn_dim)
        dz_loc = F.leaky_relu(self.cats(summary)[:, : self.dynamics_dim], 0.01)
        h_dec = self.dz_to_dec_h(dz_loc).view(-1, self.rnn_layers, self.rnn_dim).permute(1, 0, 2)
        c_dec = self.dz_to_dec_c(dz_loc).view(-1, self.rnn_layers, self.rnn_dim).permute(1, 0, 2)
        futures = torch.zeros(seq_len, bs, self.z_dim)
        for i in range(bs):
            x = self.dec_inp_0.view(1, 1, -1)
            z_prev = self.z_q_0.view(1, -1)
            h, c = h_dec[:, i : i + 1].contiguous(), c_dec[:, i : i + 1].contiguous()
            for t in range(seq_len):
                x, (h, c) = self.seq2seq_dec(x, (h, c))
                z_prev, _ = self.comb(x[0], dz_loc[i : i + 1], z_prev)
                futures[t, i] = z_prev[0]
        return futures


def encode_frames(enc: Encoder, id_layers: IDLayers, videos: torch.Tensor):
    """videos (B, T, nc, 64, 64) → z_loc, z_scale (B, T, Z), id_loc, id_scale (B, E) after id_layers."""
    b, t = videos.shape[:2]
    z_loc, z_scale, id_loc, id_scale = enc(videos.reshape(b * t, *videos.shape[2:]))
    id_loc, id_scale = id_layers(id_loc.view(b, t, -1), id_scale.view(b, t, -1))
    return z_loc.view(b, t, -1), z_scale.view(b, t, -1), id_loc, id_scale


def randomize_(module: nn.Module, seed: int, scale: float = 0.1) -> nn.Module:
    """Seeded random values for the parameters that start at zero (biases, learned states), buffers untouched."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            if not param.any():
                param.copy_(scale * torch.randn(param.shape, generator=generator))
    return module
