"""The 2024 world model's loss: terms, scales and which parameters each reaches."""

import pytest
import torch

from dreamer.nets.dists import bernoulli_nll
from dreamer.v2024.world_model import WorldModel
from dreamer.world_model import previous_actions
from tests.conftest import act_space, obs_space, random_batch

GAMMA = 1 - 1 / 333


def _loss(wm: WorldModel, batch: dict):
    """The loss of a window that starts from the zero carry, with no action before it."""
    return wm.loss(batch, previous_actions(batch["action"]), wm.rssm.initial_state(batch["action"].shape[0]))


def _model(obs, act) -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(obs, act, units=32, deter=64, stoch=4, classes=4, depth=4, blocks=8, mults=(2, 3, 4, 4),
                      coder_layers=2, head_layers=1, unimix=0.01, bins=255, limit=20.0, gamma=GAMMA, free_nats=1.0,
                      dyn_scale=1.0, rep_scale=0.1, eps=1e-4)


@pytest.mark.parametrize("image", [True, False])
def test_loss_terms_and_gradient_routes(image):
    obs, act = obs_space(image=image, vector=3), act_space(discrete=not image, size=2)
    wm = _model(obs, act)
    with torch.no_grad():  # heads away from their zero init, so every layer passes gradients on
        for head in (wm.reward, wm.cont):
            head.out.weight.normal_(0, 0.1)
    batch = random_batch(obs, act, batch=2, length=5)
    loss, post, metrics = _loss(wm, batch)
    keys = {"loss/vector", "loss/reward", "loss/cont", "loss/dyn", "loss/rep"} | ({"loss/image"} if image else set())
    assert keys <= set(metrics) and post.deter.shape == (2, 5, 64)
    parts = [metrics[k] for k in keys - {"loss/dyn", "loss/rep"}]
    torch.testing.assert_close(loss, sum(parts) + metrics["loss/dyn"] + 0.1 * metrics["loss/rep"])
    loss.backward()
    missing = [n for n, p in wm.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, missing  # encoder, RSSM (prior through dyn), decoder, reward and continue heads


def test_continue_learns_the_soft_discount():
    obs, act = obs_space(image=False, vector=3), act_space()
    wm = _model(obs, act)
    batch = random_batch(obs, act, batch=2, length=6)  # a terminal step inside each window
    _, post, metrics = _loss(wm, batch)
    feat = torch.cat([post.deter, post.stoch.flatten(-2)], -1).flatten(0, 1)
    target = GAMMA * (1 - batch["is_terminal"].flatten().float())
    assert sorted(set(target.tolist())) == pytest.approx([0.0, GAMMA])
    want = bernoulli_nll(wm.cont(feat).squeeze(-1), target).mean()
    torch.testing.assert_close(metrics["loss/cont"], want)
