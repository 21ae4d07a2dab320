"""`dreamer bench`: the fields it reports and how they relate."""

import json

import pytest

from dreamer.cli import main
from tests.conftest import FAST


def test_bench_json_fields_are_consistent(capsys):
    args = ["bench", "--env", "gym:CartPole-v1", "--size", "xs", "--updates", "2", "--device", "cpu", "--json",
            "--train-ratio", "128"]
    for override in FAST:
        args += ["--set", override]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["update_ms"] > 0 and result["world_model_ms"] > 0 and result["actor_critic_ms"] > 0
    assert result["flops_per_update"] > 0 and result["matmul_peak_flops_per_second"] > 0
    assert result["achieved_flops_per_second"] == pytest.approx(result["flops_per_update"] / result["update_ms"] * 1e3)
    assert result["fraction_of_peak"] == pytest.approx(
        result["achieved_flops_per_second"] / result["matmul_peak_flops_per_second"])
    # a full run's step costs an env step, a policy step and ratio / (B*T) updates
    per_step = (1 / result["env_steps_per_second"] + result["policy_ms_per_step"] / 1e3
                + 128 / 64 * result["update_ms"] / 1e3)
    assert result["run_steps_per_second"] == pytest.approx(1 / per_step)
    assert result["total"] == result["world_model"] + result["actor"] + result["critic"]
    assert result["precision"] == "fp32" and result["compiled"] is False and result["compile_seconds"] == 0.0
    assert result["host_syncs_per_update"] == 0  # nothing inside an update waits for the device
    # a short real run: the share of its wall time in updates, and its speed
    assert 0 < result["learner_busy"] <= 1 and result["run_measured_steps_per_second"] > 0
    assert result["kernels_per_update"] == result["eager_kernels_per_update"] > 1000


def test_kernels_on_cuda_are_launches_and_a_graph_replay_is_one():
    """Under CUDA graphs the profiler shows no per-op kernels on the host: an update that replays two
    graphs and launches three eager kernels (the optimiser) makes five launches."""
    from types import SimpleNamespace

    from dreamer.bench import count_kernels

    def event(name, parent=None):
        return SimpleNamespace(name=name, cpu_children=[], cpu_parent=parent)

    names = ["cudaGraphLaunch", "aten::add_", "cudaLaunchKernel", "cudaGraphLaunch", "aten::mul_",
             "cudaLaunchKernel", "cudaLaunchKernel", "cudaMemcpyAsync", "aten::_local_scalar_dense"]
    counted = count_kernels([event(n) for n in names], cuda=True)
    assert counted == {"kernels": 5, "host_syncs": 1}
    # on the CPU the same events are aten ops: two leaf ops that do work, and the sync
    assert count_kernels([event(n) for n in names], cuda=False) == {"kernels": 3, "host_syncs": 1}
