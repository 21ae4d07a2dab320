"""The 2024 decoder: the reference's parameter count, shapes, the block layout and the losses."""

import torch
from einops import rearrange

from dreamer.v2024.decoder import Decoder
from tests.conftest import obs_space


def test_image_decoder_parameters_match_the_reference_dec_at_size200m():
    """design-2024.md section 8: `dec` = 20,282,115 on Crafter (h 8192, z 32 x 64, depth 64)."""
    with torch.device("meta"):
        dec = Decoder(obs_space(image=True), 8192, 2048, depth=64, units=1024, layers=3, blocks=8, eps=1e-4)
    assert sum(p.numel() for p in dec.parameters()) == 20_282_115


def test_images_and_losses():
    torch.manual_seed(0)
    dec = Decoder(obs_space(image=True, vector=3), 32, 20, depth=4, units=16, layers=2, blocks=4, eps=1e-4)
    deter, stoch = torch.randn(5, 32), torch.randn(5, 20)
    images = dec.images(deter, stoch)
    assert images.shape == (5, 64, 64, 3) and images.min() >= 0 and images.max() <= 1
    obs = {"image": torch.randint(0, 256, (5, 64, 64, 3), dtype=torch.uint8), "vector": torch.randn(5, 3)}
    losses = dec.loss(deter, stoch, obs)
    torch.testing.assert_close(losses["image"], (images - obs["image"] / 255.0).square().sum((1, 2, 3)))
    pred = dec.vector_out(dec.mlp(torch.cat([stoch, deter], -1)))
    symlog = torch.sign(obs["vector"]) * torch.log1p(obs["vector"].abs())
    torch.testing.assert_close(losses["vector"], (pred - symlog).square().sum(-1))


def test_block_g_of_h_writes_its_own_channels_of_every_pixel():
    """Changing h's block 1 changes only channels [4k/G, 2 4k/G) of the block branch's bottleneck,
    at every pixel (k = 4, G = 4: channels 4..7 of 16)."""
    torch.manual_seed(0)
    dec = Decoder(obs_space(image=True), 32, 20, depth=4, units=16, layers=1, blocks=4, eps=1e-4)
    deter = torch.randn(1, 32)
    bumped = deter.clone()
    bumped[0, 8:16] += 1.0  # block 1 of 4 (8 units each)
    def block_branch(h):
        a = dec.from_deter(rearrange(h, "n (g k) -> n g k", g=4))
        return rearrange(a, "n g (h w c) -> n h w (g c)", h=4, w=4)  # (1, 4, 4, 16)

    changed = (block_branch(bumped) - block_branch(deter)).abs() > 0
    assert changed[..., 4:8].all() and not changed[..., :4].any() and not changed[..., 8:].any()
