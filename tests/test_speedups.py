"""Each speed-up against the plain computation it replaces: same outputs, same gradients."""

import copy

import torch

from dreamer.agent import Agent
from tests.conftest import act_space, obs_space, random_batch, tiny_config


def test_one_backward_for_actor_and_critic_equals_two():
    """The behavior update backpropagates actor + critic loss once; the parts share no parameter,
    so each gets the gradient its own loss gives."""
    obs, act = obs_space(image=False, vector=4), act_space(size=3)
    agent = Agent(tiny_config(), obs, act)
    post, _ = agent.train_world_model(random_batch(obs, act, batch=2, length=5))
    start = post.detach().map(lambda x: x.flatten(0, 1))
    cont = torch.ones(start.deter.shape[0])
    norm = copy.deepcopy(agent.behavior.return_norm.state_dict())
    torch.manual_seed(2)
    actor_loss, critic_loss, _ = agent.behavior.loss(agent.frozen_world_model(), start, cont)
    (actor_loss + critic_loss).backward()
    together = [p.grad.clone() for p in agent.behavior.parameters() if p.grad is not None]
    agent.behavior.zero_grad(set_to_none=True)
    agent.behavior.return_norm.load_state_dict(norm)
    torch.manual_seed(2)
    actor_loss, critic_loss, _ = agent.behavior.loss(agent.frozen_world_model(), start, cont)
    actor_loss.backward(retain_graph=True)
    critic_loss.backward()
    apart = [p.grad.clone() for p in agent.behavior.parameters() if p.grad is not None]
    assert len(together) == len(apart) > 0
    for a, b in zip(together, apart):
        torch.testing.assert_close(a, b)
