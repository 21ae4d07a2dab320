"""Data-parallel training on CPU: two gloo processes against the single-process maths (both
recipes), two-process `torchrun` training runs, and the refusal to continue a run with another
number of processes."""

import datetime
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch._inductor.config
import torch.distributed as dist
import torch.multiprocessing as mp

from dreamer import distributed
from dreamer.agent import Agent
from dreamer.behavior import scale_actor_loss
from dreamer.bench import agent_batch
from dreamer.checkpoint import load_latest
from dreamer.cli import main
from dreamer.config import load_config
from dreamer.replay import TrainRatio
from dreamer.runlock import LOCK_NAME
from dreamer.v2024.agent import Agent2024
from tests.conftest import TINY_2024, act_space, obs_space, random_batch, tiny_config, train_args

WORLD = 2


def _agent() -> Agent:
    torch.manual_seed(0)
    return Agent(tiny_config(env="gym:CartPole-v1"), obs_space(image=False, vector=4), act_space(size=2))


def _batch(rank: int) -> dict[str, torch.Tensor]:
    return random_batch(obs_space(image=False, vector=4), act_space(size=2), batch=3, length=6, seed=rank)


def _rank_main(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    torch.manual_seed(rank)  # rank 1 builds other weights; distribute() must replace them by rank 0's
    agent = Agent(tiny_config(env="gym:CartPole-v1"), obs_space(image=False, vector=4), act_space(size=2))
    agent.distribute()
    reference = _agent()  # seed 0, as rank 0
    same_start = all(torch.equal(a, b) for a, b in zip(agent.parameters(), reference.parameters()))

    torch.manual_seed(10 + rank)
    loss, _, _ = agent.loss_modules["world_model"](_batch(rank))
    loss.backward()
    distributed.average_gradients(list(agent.wm.parameters()))
    wm_grads = [p.grad.clone() for p in agent.wm.parameters()]
    agent.zero_grad(set_to_none=True)

    metrics = [agent.train(_batch(rank)) for _ in range(2)]
    torch.save({"wm_grads": wm_grads, "state": agent.state_dict(), "metrics": metrics,
                "broadcast": same_start}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_two_ranks_average_gradients_and_stay_in_step(tmp_path):
    mp.spawn(_rank_main, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    assert all(r["broadcast"] for r in ranks)  # rank 1's own init was replaced by rank 0's

    # World-model gradient = mean of the single-process gradients on each rank's batch and RNG.
    reference = _agent()
    expected = [torch.zeros_like(p) for p in reference.wm.parameters()]
    for rank in range(WORLD):
        reference.zero_grad(set_to_none=True)
        torch.manual_seed(10 + rank)
        reference.wm.loss(_batch(rank))[0].backward()
        for total, p in zip(expected, reference.wm.parameters()):
            total += p.grad / WORLD
    for r in ranks:
        for got, want in zip(r["wm_grads"], expected):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)

    # After full updates on different batches, every parameter and buffer agrees across ranks,
    # and the logged metrics are the ranks' means (identical on both).
    first, second = ranks[0]["state"], ranks[1]["state"]
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0, msg=key)
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
    start = reference.state_dict()
    assert not torch.equal(first["wm.rssm.gru.linear.weight"], start["wm.rssm.gru.linear.weight"])


def _agent_2024() -> Agent2024:
    torch.manual_seed(0)
    return Agent2024(load_config(TINY_2024, {"env": "gym:CartPole-v1"}), obs_space(image=False, vector=4),
                     act_space(size=2))


def _batch_2024(agent: Agent2024, rank: int) -> dict[str, np.ndarray]:
    """A (B, T + 1) batch with the stored latents of its steps, other on each rank."""
    return agent_batch(agent, obs_space(image=False, vector=4), act_space(size=2), 3, 6, seed=rank)


def _rank_main_2024(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    torch.manual_seed(rank)  # rank 1 builds other weights; distribute() must replace them by rank 0's
    agent = Agent2024(load_config(TINY_2024, {"env": "gym:CartPole-v1"}), obs_space(image=False, vector=4),
                      act_space(size=2))
    agent.distribute()
    same_start = all(torch.equal(a, b) for a, b in zip(agent.parameters(), _agent_2024().parameters()))
    stepped = []  # the gradients each LaProp step is given, after the learner averaged them
    agent.learner.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: stepped.append([p.grad.clone() for p in opt.param_groups[0]["params"]]))
    metrics = []
    for update in range(2):
        torch.manual_seed(10 * update + rank)  # each rank's own imagination and latent samples
        metrics.append(agent.train(_batch_2024(agent, rank)))
    torch.save({"grads": stepped[0], "state": agent.state_dict(), "metrics": metrics, "broadcast": same_start},
               f"{out}/rank{rank}-2024.pt")
    dist.destroy_process_group()


def test_two_2024_ranks_average_gradients_and_stay_in_step(tmp_path):
    """The 2024 update under DDP: the gradient its one LaProp step takes is the mean of the
    single-process gradients of each rank's batch, with the return scale S taken over both ranks'
    imagined returns (design-2024.md 6.2); the ranks stay identical."""
    mp.spawn(_rank_main_2024, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}-2024.pt", weights_only=False) for r in range(WORLD)]
    assert all(r["broadcast"] for r in ranks)  # rank 1's own init was replaced by rank 0's

    # The first update by hand, in one process: each rank's losses from its batch and RNG, one
    # return scale from the returns of both (rank order, as `distributed.concat` joins them).
    reference = _agent_2024()
    learner = reference.learner
    parts = []
    for rank in range(WORLD):
        torch.manual_seed(rank)
        parts.append(learner.losses(reference.to_tensors(_batch_2024(reference, rank)))[0])
    learner.return_norm.update(torch.cat([losses["returns"] for losses in parts]))
    params = learner.optimizer.param_groups[0]["params"]
    single = []  # per rank: the gradient of each parameter (zeros where it has none)
    for losses in parts:
        losses["policy"] = scale_actor_loss(*losses["policy_terms"], learner.return_norm.scale())
        learner.zero_grad(set_to_none=True)
        learner.total(losses).backward()
        single.append([torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params])
    assert any(not torch.equal(a, b) for a, b in zip(*single))  # the ranks' gradients differ: the mean matters
    expected = [sum(grads) / WORLD for grads in zip(*single)]
    for r in ranks:
        for got, want in zip(r["grads"], expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)

    # After two updates on different batches, every parameter and buffer agrees across ranks, the
    # weights moved (the second update's learning rate is past 0) and the metrics are the ranks' means.
    first, second = ranks[0]["state"], ranks[1]["state"]
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0, msg=key)
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
    assert not torch.equal(first["learner.critic.out.weight"], reference.state_dict()["learner.critic.out.weight"])


def test_torchrun_two_processes_train_one_run(tmp_path):
    logdir = tmp_path / "run"
    steps, prefill, ratio = 300, 50, 64
    args = train_args(logdir, "gym:CartPole-v1", steps)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}",
           "-m", "dreamer", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    # One log, written once (rank 0), with steps counted over both ranks.
    records = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == sorted({r["step"] for r in records})
    assert records[-1]["step"] == steps
    # The ratio counts all ranks' policy steps and all ranks' replayed steps: the same updates as
    # one process would make, here floor((300 - 50) * 64 / (2 * 4 * 16)).
    schedule = TrainRatio(ratio, WORLD * 4 * 16)
    assert records[-1]["perf/updates"] == schedule.total_after(steps - prefill) == 125
    # Each rank stored its own steps; the checkpoint holds both ranks' replay positions.
    _, payload = load_latest(logdir / "checkpoints")
    assert payload["progress"]["step"] == steps
    assert [sum(r["replay_written"]) for r in payload["ranks"]] == [steps // WORLD] * WORLD
    assert list((logdir / "replay").glob("*.npz")) and list((logdir / "replay-rank1").glob("*.npz"))
    episodes = [json.loads(line) for line in (logdir / "episodes.jsonl").read_text().splitlines()]
    assert episodes and payload["progress"]["episodes"] == len(episodes)


@pytest.fixture(scope="module")
def run_2024(tmp_path_factory) -> Path:
    """A 2024 run of 200 steps trained by two `torchrun` processes (one run for the tests below)."""
    from tests.test_v2024_agent import args_2024

    logdir = tmp_path_factory.mktemp("ddp2024") / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}",
           "-m", "dreamer", *args_2024(logdir, 200)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return logdir


def test_torchrun_two_processes_train_a_2024_run(run_2024):
    """The 2024 learner under DDP: each rank trains from its own replay (with its stored latents)
    once that holds batch_size x batch_length windows; the ratio counts both ranks' steps from then."""
    records = [json.loads(line) for line in (run_2024 / "metrics.jsonl").read_text().splitlines()]
    # each rank's replay holds 4 x 16 windows of 17 steps after 80 of its steps: global step 160
    assert records[-1]["perf/updates"] == TrainRatio(32, WORLD * 4 * 16).total_after(200 - 160) == 10
    _, payload = load_latest(run_2024 / "checkpoints")
    assert [sum(r["replay_written"]) for r in payload["ranks"]] == [100, 100]
    assert (run_2024 / "replay" / "latents.npz").is_file() and (run_2024 / "replay-rank1" / "latents.npz").is_file()


def test_a_run_continues_only_with_the_number_of_processes_that_saved_it(run_2024, capsys):
    """Each rank's replay, RNGs and env state are saved per rank: the two-process run continued by
    one process is refused with one line that names the checkpoint, and nothing of the run changes."""
    from tests.test_v2024_agent import args_2024

    path, _ = load_latest(run_2024 / "checkpoints")
    def files() -> dict[Path, int]:  # the run's files and their times, but the lock every command takes
        return {p.relative_to(run_2024): p.stat().st_mtime_ns for p in run_2024.rglob("*")
                if p.is_file() and p.name != LOCK_NAME}

    before = files()
    capsys.readouterr()
    assert main(args_2024(run_2024, 240)) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"dreamer: error: {path} was saved by {WORLD} ranks; this run has 1; "
                                f"accepted: the same number of processes"]
    assert files() == before


def test_setup_gives_collectives_time_for_a_first_compile_and_shares_the_cores(monkeypatch):
    """NCCL's default timeout (10 minutes) is shorter than a first compile at large sizes, and every
    rank started an Inductor worker per core."""
    calls = []
    threads = torch._inductor.config.compile_threads
    monkeypatch.setattr(torch._inductor.config, "compile_threads", threads)  # restored after the test
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kwargs: calls.append((backend, kwargs)))
    monkeypatch.setattr(distributed.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setenv("TORCHINDUCTOR_COMPILE_THREADS", "16")
    ranks, device = distributed.setup("cpu", timeout_minutes=120, compile_threads=0)
    assert (ranks.rank, ranks.world, device.type) == (1, 4, "cpu")
    assert calls == [("gloo", {"timeout": datetime.timedelta(minutes=120)})]
    assert distributed.os.environ["TORCHINDUCTOR_COMPILE_THREADS"] == "4"  # 16 cores / 4 ranks
    assert torch._inductor.config.compile_threads == 4
    distributed.setup("cpu", timeout_minutes=5, compile_threads=3)  # the config key overrides
    assert torch._inductor.config.compile_threads == 3 and calls[-1][1]["timeout"].total_seconds() == 300


COLLECTIVES = ("c10d", "all_reduce", "all_gather", "broadcast", "reduce_scatter")


def _compiled_rank_main(rank: int, store: str, out: str) -> None:
    """Both recipes compiled (traced with aot_eager: the graphs Inductor would get, no code
    generation) in a data-parallel run of two gloo processes, each on its own batches."""
    from torch._dynamo.backends.debugging import aot_eager

    from dreamer import compiler
    from dreamer.bench import agent_batch
    from dreamer.config import load_config
    from dreamer.recipes import build_agent
    from tests.conftest import TINY_2024

    graphs: list[torch.fx.GraphModule] = []

    def recording(gm, example_inputs):
        graphs.append(gm)
        return aot_eager(gm, example_inputs)

    compiler.BACKEND = recording
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    obs, act = obs_space(image=False, vector=4), act_space(size=2)
    result = {}
    for recipe, overrides in (("2023", ["dims.deter=32", "dims.units=32", "dims.layers=1", "behavior.horizon=2",
                                        "encoder.mlp_units=32", "encoder.mlp_layers=1", "decoder.mlp_units=32",
                                        "decoder.mlp_layers=1", "run.precision=fp32"]),
                              ("2024", [*TINY_2024, "behavior.horizon=2"])):
        graphs.clear()
        torch._dynamo.reset()
        torch.manual_seed(rank)
        agent = build_agent(load_config([*overrides, "run.compile=on"], {"env": "gym:CartPole-v1", "recipe": recipe}),
                            obs, act)
        agent.distribute()
        metrics = [agent.train(agent_batch(agent, obs, act, 2, 4, seed=10 * rank + i)) for i in range(2)]
        inside = sorted({str(node.target) for gm in graphs for node in gm.graph.nodes
                         if any(name in str(node.target) for name in COLLECTIVES)})
        result[recipe] = {"graphs": len(graphs), "collectives_inside": inside, "metrics": metrics,
                          "state": agent.state_dict()}
    torch.save(result, f"{out}/compiled-rank{rank}.pt")
    dist.destroy_process_group()


def test_compiled_data_parallel_updates_are_one_graph_per_loss_with_collectives_outside(tmp_path):
    """DDP under torch.compile split each loss graph at every gradient bucket, and the return
    percentiles' all_gather ran inside the captured graph. Now: one graph per loss, the
    collectives in eager code between them, and the ranks stay in step."""
    mp.spawn(_compiled_rank_main, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"compiled-rank{r}.pt", weights_only=False) for r in range(WORLD)]
    for recipe, graphs in (("2023", 2), ("2024", 1)):  # P1: world model, behaviour; 2024: its one loss
        for r in ranks:
            assert r[recipe]["graphs"] == graphs, recipe
            assert r[recipe]["collectives_inside"] == [], recipe
        first, second = ranks[0][recipe]["state"], ranks[1][recipe]["state"]
        for key in first:
            torch.testing.assert_close(first[key], second[key], rtol=0, atol=0, msg=f"{recipe} {key}")
        assert ranks[0][recipe]["metrics"] == ranks[1][recipe]["metrics"]  # the ranks' means
