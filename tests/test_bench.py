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
    assert result["kernels_per_update"] == result["eager_kernels_per_update"] > 1000
