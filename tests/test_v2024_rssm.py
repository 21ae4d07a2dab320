"""The 2024 block GRU against a dense GRU whose weights are masked to the same blocks."""

import torch
import torch.nn.functional as F

from dreamer.nets.rssm import Latent
from dreamer.v2024.rssm import RSSM, BlockGRU

D, HIDDEN, STOCH, ACT, G = 16, 6, 10, 3, 4
K = D // G  # units per block


def _rms(x, scale, eps=1e-4):
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps) * scale


def test_block_gru_equals_a_dense_gru_with_masked_weights():
    torch.manual_seed(0)
    core = BlockGRU(D, HIDDEN, STOCH, ACT, G, eps=1e-4)
    with torch.no_grad():
        for p in core.parameters():
            p.normal_(0, 0.5)  # biases and norm scales away from their init, so each is checked
    h, z, a = torch.randn(5, D), torch.randn(5, STOCH), 3 * torch.randn(5, ACT)

    # Inputs: three normed branches on h, z and the squashed action.
    a_sq = a / a.abs().clamp(min=1.0)
    branches = []
    for layer, x in zip(core.dynin, (h, z, a_sq)):
        linear, norm = layer[0], layer[1]
        branches.append(F.silu(_rms(x @ linear.weight.T + linear.bias, norm.scale)))
    e = torch.cat(branches, -1)  # (N, 3 HIDDEN)

    # Hidden layer as one dense (D, D + 3 HIDDEN) matrix: unit j of block g sees h_g and all of e.
    w_in = core.hidden.weight  # (G, K + 3 HIDDEN, K)
    dense_hidden = torch.zeros(D, D + 3 * HIDDEN)
    for g in range(G):
        dense_hidden[g * K:(g + 1) * K, g * K:(g + 1) * K] = w_in[g, :K].T
        dense_hidden[g * K:(g + 1) * K, D:] = w_in[g, K:].T
    y = F.silu(_rms(torch.cat([h, e], -1) @ dense_hidden.T + core.hidden.bias, core.hidden_norm.scale))

    # Gates as one dense (3D, D) matrix, block-diagonal; block g's 3K outputs are [reset, cand, update].
    w_gate = core.gates.weight  # (G, K, 3K)
    dense_gates = torch.zeros(3 * D, D)
    for g in range(G):
        dense_gates[g * 3 * K:(g + 1) * 3 * K, g * K:(g + 1) * K] = w_gate[g].T
    out = (y @ dense_gates.T + core.gates.bias).view(5, G, 3, K)
    reset, cand, update = (out[:, :, i].reshape(5, D) for i in range(3))
    u = torch.sigmoid(update - 1)
    want = u * torch.tanh(torch.sigmoid(reset) * cand) + (1 - u) * h

    torch.testing.assert_close(core(h, z, a), want)



def test_block_gru_parameters_at_size200m_on_crafter():
    """dynin (8,390,656 + 2,099,200 + 19,456) + hidden block layer 8 x 4096 x 1024 + 2 x 8192
    + gates 8 x 1024 x 3072 + 24,576: the recurrent part of design-2024.md section 8's dyn."""
    with torch.device("meta"):
        core = BlockGRU(8192, 1024, 32 * 64, 17, 8, eps=1e-4)
    assert sum(p.numel() for p in core.parameters()) == 8_390_656 + 2_099_200 + 19_456 + 33_570_816 + 25_190_400


def test_rssm_parameters_match_the_reference_dyn_at_size200m():
    """design-2024.md section 8: the reference log's `dyn` on Crafter (4,096 tokens, 17 actions)."""
    with torch.device("meta"):
        rssm = RSSM(8192, 1024, 32, 64, 8, 0.01, action_dim=17, token_dim=4096, eps=1e-4)
    assert sum(p.numel() for p in rssm.parameters()) == 95_495_168


def test_reset_zeroes_state_and_action_before_the_core():
    """At is_first the step runs the core on zeros: h_1 = core(0, 0, 0), not 0."""
    torch.manual_seed(0)
    rssm = RSSM(D, HIDDEN, 2, 5, G, 0.01, action_dim=ACT, token_dim=7, eps=1e-4)
    with torch.no_grad():
        for p in rssm.parameters():
            p.normal_(0, 0.5)  # trained biases: the core of zeros is then not zero
    state = Latent(torch.randn(3, D), torch.eye(5)[torch.randint(0, 5, (3, 2))])
    action, tokens = torch.randn(3, ACT), torch.randn(3, 7)
    is_first = torch.tensor([True, False, True])
    torch.manual_seed(1)
    got, logits = rssm.obs_step(state, action, tokens, is_first)
    zero = rssm.initial_state(3)
    fresh = rssm.core(zero.deter, zero.stoch.flatten(-2), torch.zeros(3, ACT))
    kept = rssm.core(state.deter, state.stoch.flatten(-2), action)
    torch.testing.assert_close(got.deter, torch.where(is_first[:, None], fresh, kept))
    assert fresh.abs().sum() > 0  # the first state after a reset is not zero
    probs = logits.exp()
    assert probs.min() >= 0.01 / 5 - 1e-7 and torch.allclose(probs.sum(-1), torch.ones(3, 2))
    assert torch.equal(got.stoch.sum(-1), torch.ones(3, 2))
