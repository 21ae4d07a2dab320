"""The 2024 encoder: shapes, token order and the parameter counts of design-2024.md section 8."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from dreamer.v2024.encoder import Encoder
from tests.conftest import obs_space

MULTS = (2, 3, 4, 4)


@pytest.mark.parametrize("depth, count", [(64, 3_492_864), (4, 616 + 2_424 + 4_832 + 6_432)])
def test_image_encoder_parameters_match_the_reference(depth, count):
    """size200m: 3,492,864 (the reference log's `enc`); size1m by hand: per stage 25 cin cout + 2 cout."""
    with torch.device("meta"):
        enc = Encoder(obs_space(image=True), depth, MULTS, units=64 * depth // 4, layers=3, eps=1e-4)
    assert sum(p.numel() for p in enc.parameters()) == count
    assert enc.out_dim == 16 * 4 * depth  # 4 x 4 x 4k


def test_tokens_are_vectors_then_images():
    torch.manual_seed(0)
    space = obs_space(image=True, vector=3)
    enc = Encoder(space, 4, MULTS, units=8, layers=2, eps=1e-4)
    obs = {"image": torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8), "vector": torch.randn(2, 3)}
    tokens = enc(obs)
    assert tokens.shape == (2, 8 + 16 * 16)
    torch.testing.assert_close(tokens[:, :8], enc.mlp(torch.sign(obs["vector"]) * torch.log1p(obs["vector"].abs())))
    # each stage halves the resolution: 64 -> 32 -> 16 -> 8 -> 4
    x = obs["image"].float().permute(0, 3, 1, 2) / 255 - 0.5
    for stage, size in zip(enc.cnn, (32, 16, 8, 4)):
        x = stage(x)
        assert x.shape[-1] == size
    torch.testing.assert_close(tokens[:, 8:], x.permute(0, 2, 3, 1).flatten(1))


def test_vector_only_encoder_has_no_cnn():
    space = gym.spaces.Dict({"vector": gym.spaces.Box(-np.inf, np.inf, (24,), np.float32),
                             "is_first": gym.spaces.Box(0, 1, (), bool)})
    enc = Encoder(space, 4, MULTS, units=64, layers=3, eps=1e-4)
    assert not hasattr(enc, "cnn") and enc.out_dim == 64
    # 3 x [Linear + bias + RMSNorm scale]: (24 + 2) 64 + 2 (65 x 64)
    assert sum(p.numel() for p in enc.parameters()) == 26 * 64 + 2 * 66 * 64
