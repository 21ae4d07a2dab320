"""The compiled update (`run.compile=on`) on CPU, for both recipes: the same numbers as eager, one
graph per loss, no recompiles and no host syncs inside an update."""

from functools import partial

import pytest
import torch
import torch._dynamo
import torch._inductor.config
from torch._dynamo.testing import CompileCounter

from dreamer import compiler
from dreamer.agent import Agent
from dreamer.config import load_config
from dreamer.v2024.agent import Agent2024
from tests.cudagraph_rule import CudaGraphRule
from tests.conftest import TINY_2024, act_space, obs_space, random_batch, tiny_config, with_latents

SHAPES = {"vector-discrete": (obs_space(image=False, vector=4), act_space()),
          "image-continuous": (obs_space(image=True), act_space(discrete=False, size=2))}
# Compiling takes minutes on 2 cores: the equality test compiles the smallest model that still
# takes every path of the behavior loss that eager takes for continuous actions (returns through
# the dynamics and the frozen critic); the one-graph test traces every shape without compiling.
COMPILED = (obs_space(image=False, vector=4), act_space(discrete=False, size=2))


def _agent(compile_setting: str, obs, act, recipe: str = "2023") -> Agent | Agent2024:
    torch.manual_seed(0)
    if recipe == "2024":
        cfg = load_config([*TINY_2024, f"run.compile={compile_setting}", "behavior.horizon=2"], {"env": "crafter"})
        return Agent2024(cfg, obs, act)
    return Agent(tiny_config(f"run.compile={compile_setting}", "behavior.horizon=2"), obs, act)


def _batches(agent: Agent | Agent2024, obs, act) -> list[dict]:
    """Three batches of 4 trained steps; the 2024 agent's start with a context step and carry the
    stored latents."""
    if isinstance(agent, Agent2024):
        rssm = agent.wm.rssm
        return [with_latents(random_batch(obs, act, batch=2, length=5, seed=i), rssm.deter, rssm.stoch, rssm.classes,
                             seed=i) for i in range(3)]
    return [random_batch(obs, act, batch=2, length=4, seed=i) for i in range(3)]


@pytest.mark.parametrize("recipe", ["2023", "2024"])
def test_compiled_updates_equal_eager_in_fp32(monkeypatch, recipe):
    """Under the CUDA graphs' rule on outputs, emulated (`tests/cudagraph_rule.py`)."""
    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)  # eager's random streams
    rule = CudaGraphRule().install(monkeypatch)
    obs, act = COMPILED
    runs = {}
    for setting in ("off", "on"):
        torch._dynamo.reset()
        agent = _agent(setting, obs, act, recipe)
        torch.manual_seed(1)
        metrics, latents = [], []
        for i, batch in enumerate(_batches(agent, obs, act)):
            if i == 1:  # after the first update's compilation nothing may compile again
                monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
            metrics.append(agent.train(batch))
            latents.append(agent.take_latents())
        monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", False)
        grads = {n: p.grad.clone() for n, p in agent.named_parameters() if p.grad is not None}
        runs[setting] = (metrics, latents, agent.state_dict(), grads, agent)
    (eager_metrics, eager_latents, eager_state, eager_grads, _), (metrics, latents, state, grads, agent) = \
        runs["off"], runs["on"]
    assert all(isinstance(loss, compiler.Compiled) for loss in agent.losses().values())
    assert rule.overwritten > 0
    for want, got in zip(eager_metrics, metrics):
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-5, nan_ok=True), key
    for want, got in zip(eager_latents, latents):  # the 2024 write-back; None under P1
        assert (want is None) == (got is None) == (recipe == "2023")
        for key in want or {}:
            torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-5, msg=key)
    for key in eager_state:
        torch.testing.assert_close(state[key], eager_state[key], rtol=1e-5, atol=1e-5, msg=key)
    assert grads.keys() == eager_grads.keys() and grads
    for key in grads:  # sums of large terms that cancel: tolerance relative to the tensor's largest entry
        scale = max(1.0, eager_grads[key].abs().max().item())
        torch.testing.assert_close(grads[key] / scale, eager_grads[key] / scale, rtol=1e-5, atol=1e-5, msg=key)


@pytest.mark.parametrize("shapes", SHAPES)
def test_each_loss_is_one_graph(shapes):
    obs, act = SHAPES[shapes]
    agent = _agent("off", obs, act)
    batch = agent.to_tensors(random_batch(obs, act, batch=2, length=4))
    torch._dynamo.reset()
    explained = torch._dynamo.explain(agent.wm.loss)(batch)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    post = agent.wm.loss(batch)[1]
    start = post.detach().map(lambda x: x.flatten(0, 1))
    cont = 1.0 - batch["is_terminal"].flatten().float()
    explained = torch._dynamo.explain(agent.behavior.loss)(agent.frozen_world_model(), start, cont)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_the_2024_update_is_one_graph():
    """The image paths (the 2024 encoder and decoder); the equality test compiles the vector ones."""
    obs, act = SHAPES["image-continuous"]
    agent = _agent("off", obs, act, "2024")
    batch = agent.to_tensors(_batches(agent, obs, act)[0])
    torch._dynamo.reset()
    explained = torch._dynamo.explain(agent.learner.losses)(batch)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_the_2024_policy_step_under_autocast_is_traced_once():
    """Its autocast asks `precision.native_bf16` inside the compiled step; reading the CPU's flags
    there broke the graph and recompiled the rest at every step."""
    obs, act = SHAPES["vector-discrete"]
    cfg = load_config([*TINY_2024, "run.precision=auto"], {"env": "crafter"})
    agent = Agent2024(cfg, obs, act)
    steps = random_batch(obs, act, batch=3, length=4, seed=2)
    torch._dynamo.reset()
    counter = CompileCounter()
    step = torch.compile(partial(agent.act, mode="train"), backend=counter)
    state = agent.initial_policy_state(3)
    with torch.no_grad():
        for t in range(4):
            action, latent = step(agent.to_tensors({k: v[:, t] for k, v in steps.items()}), *state)
            state = (latent, action)
    assert counter.frame_count == 1


def test_compile_setting_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert compiler.enabled("on", cpu) and not compiler.enabled("off", cuda)
    # `auto` compiles nowhere until a compiled update has run and been measured on that device
    assert not compiler.enabled("auto", cuda) and not compiler.enabled("auto", cpu)
    assert compiler.describe(True, cuda).startswith("on (unverified on cuda")
    assert compiler.describe(True, cpu) == "on" and compiler.describe(False, cuda) == "off"
    assert compiler.mode(cuda) == "reduce-overhead" and compiler.mode(cpu) == "default"
    with pytest.raises(ValueError, match="accepted: auto, on, off"):
        compiler.enabled("yes", cpu)


@pytest.mark.parametrize("recipe, mode", [("2023", "train"), ("2023", "greedy"), ("2024", "train")])
def test_compiled_policy_step_equals_eager(monkeypatch, recipe, mode):
    """Under the CUDA graphs' rule on outputs, emulated (`tests/cudagraph_rule.py`)."""
    monkeypatch.setattr(torch._inductor.config, "fallback_random", True)  # eager's random streams
    rule = CudaGraphRule().install(monkeypatch)
    obs, act = SHAPES["vector-discrete"]
    steps = random_batch(obs, act, batch=3, length=4, seed=2)  # 3 envs, 4 steps, a reset at step 2
    runs = {}
    for setting in ("off", "on"):
        torch._dynamo.reset()
        agent = _agent(setting, obs, act, recipe)
        torch.manual_seed(3)
        state, actions = None, []
        for t in range(4):
            if t == 1:  # one graph, built at the first step, for every later step
                monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)
            action, state = agent.policy({k: v[:, t] for k, v in steps.items()}, state, mode)
            actions.append(action)
        monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", False)
        runs[setting] = (torch.stack(actions), state, agent)
    (eager_actions, eager_state, _), (actions, state, agent) = runs["off"], runs["on"]
    assert isinstance(agent.policy_step(mode), compiler.Compiled)
    assert rule.overwritten > 0
    torch.testing.assert_close(actions, eager_actions, rtol=0, atol=0)
    torch.testing.assert_close(state[0].deter, eager_state[0].deter, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state[0].stoch, eager_state[0].stoch, rtol=0, atol=0)
