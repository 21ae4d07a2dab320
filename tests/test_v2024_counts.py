"""Every 2024 module at once against the parameter counts of design-2024.md section 8 (the
optimizer's count: encoder, RSSM, decoder, reward, continue, actor, critic; no slow critic)."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from dreamer.v2024.decoder import Decoder
from dreamer.v2024.encoder import Encoder
from dreamer.v2024.heads import Actor, MLPHead
from dreamer.v2024.rssm import RSSM

FLAGS = gym.spaces.Box(0, 1, (), bool)


def _space(side: int, channels: int) -> gym.spaces.Dict:
    return gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (side, side, channels), np.uint8), "is_first": FLAGS,
                            "is_last": FLAGS, "is_terminal": FLAGS, "reward": gym.spaces.Box(-np.inf, np.inf, ())})


def _count(d: int, obs: gym.spaces.Dict, act: gym.spaces.Space) -> dict[str, int]:
    deter, classes, depth, eps = 8 * d, d // 16, d // 16, 1e-4
    with torch.device("meta"):
        enc = Encoder(obs, depth, (2, 3, 4, 4), d, 3, eps)
        actions = int(act.n) if isinstance(act, gym.spaces.Discrete) else int(act.shape[0])
        dyn = RSSM(deter, d, 32, classes, 8, 0.01, action_dim=actions, token_dim=enc.out_dim, eps=eps)
        dec = Decoder(obs, deter, 32 * classes, depth, d, 3, 8, eps)
        feat = deter + 32 * classes
        parts = {"enc": enc, "dyn": dyn, "dec": dec, "rew": MLPHead(feat, d, 1, 255, 0.0, eps),
                 "con": MLPHead(feat, d, 1, 1, 1.0, eps), "pol": Actor(feat, d, 3, act, 0.1, 1.0, 0.01, eps),
                 "val": MLPHead(feat, d, 3, 255, 0.0, eps)}
    return {name: sum(p.numel() for p in module.parameters()) for name, module in parts.items()}


@pytest.mark.parametrize("d, crafter, atari", [
    (64, 687_875, 769_762), (256, 10_498_259, 11_808_850), (384, 23_495_475, 26_444_402),
    (512, 41_658_259, 46_900_882), (768, 93_480_531, 105_276_626), (1024, 165_965_075, 186_936_082),
    (1536, 372_920_979, 420_106_130),
])
def test_presets_match_the_reference_counts(d, crafter, atari):
    assert sum(_count(d, _space(64, 3), gym.spaces.Discrete(17)).values()) == crafter
    assert sum(_count(d, _space(96, 1), gym.spaces.Discrete(18)).values()) == atari


def test_size200m_per_module_split_on_crafter():
    """The reference's log: 'Optimizer opt has 165,965,075 params', per module."""
    assert _count(1024, _space(64, 3), gym.spaces.Discrete(17)) == {
        "dyn": 95_495_168, "dec": 20_282_115, "val": 12_850_431, "pol": 12_606_481, "rew": 10_749_183,
        "con": 10_488_833, "enc": 3_492_864}


def test_size1m_walker_from_proprioception():
    """design-2024.md section 8: size1m on DMC walker (24 proprio inputs, 6 continuous actions, no
    image) has 640,867 parameters."""
    obs = gym.spaces.Dict({"vector": gym.spaces.Box(-np.inf, np.inf, (24,), np.float32), "is_first": FLAGS,
                           "is_last": FLAGS, "is_terminal": FLAGS, "reward": gym.spaces.Box(-np.inf, np.inf, ())})
    assert sum(_count(64, obs, gym.spaces.Box(-1, 1, (6,), np.float32)).values()) == 640_867
