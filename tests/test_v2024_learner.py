"""The 2024 update: which loss reaches which module (design-2024.md 6.5), one LaProp step with a
zero first learning rate, and the slow critic."""

import gymnasium as gym
import pytest
import torch

from dreamer.behavior import ReturnNorm
from dreamer.v2024.heads import Actor, MLPHead
from dreamer.v2024.behavior import policy_loss
from dreamer.v2024.learner import Learner
from dreamer.v2024.world_model import WorldModel
from tests.conftest import act_space, obs_space, random_batch, with_latents

REACHES = {  # loss -> modules it trains
    "world_model": {"wm.encoder", "wm.rssm", "wm.decoder", "wm.reward", "wm.cont"},
    "policy": {"actor"},
    "value": {"critic"},
    "replay_value": {"critic", "wm.rssm", "wm.encoder"},
}
MODULES = ("wm.encoder", "wm.rssm", "wm.decoder", "wm.reward", "wm.cont", "actor", "critic")


def _learner(discrete: bool) -> tuple[Learner, gym.spaces.Dict, gym.spaces.Space]:
    torch.manual_seed(0)
    obs, act = obs_space(image=True, vector=3), act_space(discrete=discrete, size=2)
    wm = WorldModel(obs, act, units=32, deter=64, stoch=4, classes=4, depth=4, blocks=8, mults=(2, 3, 4, 4),
                    coder_layers=1, head_layers=1, unimix=0.01, bins=255, limit=20.0, gamma=1 - 1 / 333,
                    free_nats=1.0, dyn_scale=1.0, rep_scale=0.1, eps=1e-4)
    feat = 64 + 16
    critic = MLPHead(feat, 32, 2, 255, 0.0, 1e-4)
    with torch.no_grad():  # zero-initialised output layers would block the gradient to the layers below
        for head in (wm.reward, critic):
            head.out.weight.normal_(0, 0.1)
    learner = Learner(wm, Actor(feat, 32, 2, act, 0.1, 1.0, 0.01, 1e-4), critic,
                      horizon=3, lam=0.95, eta=3e-4, slow_reg=1.0, slow_rate=0.02, repval_scale=0.3,
                      return_norm=ReturnNorm(0.99, 0.05, 0.95, 1.0),
                      optim=dict(lr=4e-5, beta1=0.9, beta2=0.999, eps=1e-20, agc=0.3, pmin=1e-3, warmup=1000))
    return learner, obs, act


@pytest.mark.parametrize("discrete", [True, False])
def test_each_loss_reaches_exactly_its_modules(discrete):
    learner, obs, act = _learner(discrete)
    batch = with_latents(random_batch(obs, act, batch=2, length=6), 64, 4, 4)
    for name, reached in REACHES.items():
        learner.zero_grad(set_to_none=True)
        losses, _, _ = learner.losses(batch)
        if name == "policy":  # its terms before the return scale, as `update` finishes them
            losses["policy"], _ = policy_loss(losses["policy_terms"], losses["returns"], learner.return_norm)
        losses[name].backward()
        got = {m for m in MODULES
               if any(p.grad is not None and p.grad.any() for p in learner.get_submodule(m).parameters())}
        assert got == reached, name
        assert all(p.grad is None for p in learner.slow_critic.parameters())


def test_update_moves_no_weight_first_then_the_slow_critic_follows():
    learner, obs, act = _learner(True)
    batch = with_latents(random_batch(obs, act, batch=2, length=6), 64, 4, 4)
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    learner.update(batch)  # lr 0 on the first update (warm-up counts earlier updates)
    assert all(torch.equal(before[k], v) for k, v in learner.state_dict().items() if not k.startswith("return_norm"))
    learner.update(batch)
    after = learner.state_dict()
    assert not torch.equal(before["critic.out.weight"], after["critic.out.weight"])
    # slow <- 0.98 slow + 0.02 critic, with the critic after this step
    want = 0.98 * before["slow_critic.out.weight"] + 0.02 * after["critic.out.weight"]
    torch.testing.assert_close(after["slow_critic.out.weight"], want)


def test_the_window_starts_from_the_stored_latent_of_its_context_step():
    """Step 1's posterior is one RSSM step from step 0's stored (h, z) under step 0's action."""
    learner, obs, act = _learner(True)
    batch = with_latents(random_batch(obs, act, batch=2, length=6), 64, 4, 4)
    batch["is_first"][:] = False  # no reset inside: the carry must come from the stored latent
    observed, prev_action, start = learner.split_context(batch)
    assert observed["is_first"].shape == (2, 5) and torch.equal(prev_action, batch["action"][:, :5])
    torch.testing.assert_close(start.deter, batch["deter"][:, 0])
    assert torch.equal(start.stoch.argmax(-1), batch["stoch"][:, 0].long()) and start.stoch.sum() == 2 * 4
    torch.manual_seed(1)
    _, post, _ = learner.losses(batch)
    want = learner.wm.rssm.core(start.deter, start.stoch.flatten(-2), batch["action"][:, 0])
    torch.testing.assert_close(post.deter[:, 0], want)
    assert not torch.equal(want, learner.wm.rssm.core(torch.zeros_like(start.deter), torch.zeros(2, 16),
                                                      batch["action"][:, 0]))


def test_a_step_before_an_episode_start_counts_as_last():
    learner, obs, act = _learner(True)
    batch = with_latents(random_batch(obs, act, batch=1, length=6), 64, 4, 4)
    batch["is_first"][:] = False
    batch["is_last"][:] = False
    batch["is_first"][0, 4] = True  # window step 4 = observed step 3
    observed, _, _ = learner.split_context(batch)
    assert observed["is_last"][0].tolist() == [False, False, True, False, False]
