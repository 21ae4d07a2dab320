"""The GPU path, tested on the CPU: devices simulated with the meta device, monkeypatched capability
and RNG queries, and gloo process groups."""

import logging
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from dreamer import checkpoint, precision
from dreamer import train as train_module
from dreamer.agent import Agent
from dreamer.cli import main
from dreamer.config import ConfigError, OptimConfig
from dreamer.optim import Optimizer
from tests.conftest import act_space, obs_space, random_batch, tiny_config, train_args

CUDA0, CUDA1 = torch.device("cuda", 0), torch.device("cuda", 1)


# -- 1. resume: RNG states stay on the CPU; one GPU's state per process --------------------------------


def test_resume_reads_the_checkpoint_onto_the_cpu(tmp_path, monkeypatch):
    """A checkpoint loaded with the run's device as map_location moved the RNG states off the CPU,
    and `torch.set_rng_state` then refused them. Here any map_location other than the CPU lands
    the tensors on the meta device, as a GPU would; the resume must not depend on it."""
    logdir = tmp_path / "run"
    assert main(train_args(logdir, steps=100)) == 0
    real_load = torch.load

    def load_elsewhere(f, map_location=None, **kwargs):
        return real_load(f, map_location="cpu" if map_location == "cpu" else "meta", **kwargs)

    monkeypatch.setattr(torch, "load", load_elsewhere)
    assert main(train_args(logdir, steps=150)) == 0
    steps = [int(p.stem.split("-")[1]) for p in checkpoint.list_checkpoints(logdir / "checkpoints")]
    assert steps[-1] == 150


class FakeCudaRng:
    """torch.cuda's RNG calls for `count` visible GPUs, each state a distinct byte tensor."""

    def __init__(self, count: int):
        self.states = {i: torch.full((16,), 10 + i, dtype=torch.uint8) for i in range(count)}
        self.restored: list[tuple[int, torch.Tensor]] = []

    def install(self, monkeypatch):
        def index(device):
            return torch.device(device).index or 0

        def set_state(state, device="cuda"):
            if index(device) not in self.states:
                raise IndexError(f"no GPU {index(device)}")
            self.restored.append((index(device), state))

        def set_all(states):
            for i, state in enumerate(states):
                set_state(state, torch.device("cuda", i))

        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": self.states[index(device)].clone())
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in self.states.values()])
        monkeypatch.setattr(torch.cuda, "set_rng_state", set_state)
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", set_all)


def test_rng_states_hold_and_restore_only_this_process_gpu(monkeypatch):
    saved_by = FakeCudaRng(count=4)
    saved_by.install(monkeypatch)
    states = train_module.rng_states(CUDA1)  # rank 1 of a 4-GPU machine
    assert torch.equal(states["cuda"], saved_by.states[1]) and states["torch"].device.type == "cpu"

    resumed_on = FakeCudaRng(count=1)  # the same run continued on a machine with one GPU
    resumed_on.install(monkeypatch)
    train_module.set_rng_states(states, CUDA0)
    assert [(i, s.tolist()) for i, s in resumed_on.restored] == [(0, saved_by.states[1].tolist())]


def test_cpu_run_restores_no_gpu_state(monkeypatch):
    fake = FakeCudaRng(count=2)
    fake.install(monkeypatch)
    states = train_module.rng_states(torch.device("cpu"))
    assert states["cuda"] is None
    train_module.set_rng_states(states, torch.device("cpu"))
    assert fake.restored == []


# -- 2. one place decides the precision ------------------------------------------------------------------


@pytest.mark.parametrize("capability, expected", [((7, 0), torch.float32), ((7, 5), torch.float32),
                                                  ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_auto_precision_on_cuda_asks_the_agents_device(monkeypatch, capability, expected):
    asked = []

    def capability_of(device=None):
        asked.append(device)
        return capability

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability_of)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # counts emulation too
    assert precision.compute_dtype("auto", CUDA1) == expected
    assert asked == [CUDA1]
    assert precision.compute_dtype("fp32", CUDA1) == torch.float32


@pytest.mark.parametrize("flags, expected", [({"avx512f", "avx512bw"}, torch.float32),
                                             ({"avx512f", "avx512_bf16"}, torch.bfloat16),
                                             ({"amx_bf16", "amx_tile"}, torch.bfloat16), (set(), torch.float32)])
def test_auto_precision_on_cpu_needs_native_bf16(monkeypatch, flags, expected):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    assert precision.compute_dtype("auto", torch.device("cpu")) == expected
    assert precision.compute_dtype("bf16", torch.device("cpu")) == torch.bfloat16


def test_precision_key_and_flag_are_checked(capsys):
    with pytest.raises(ConfigError, match="run.precision.*accepted: one of auto, fp32, tf32, bf16"):
        tiny_config("run.precision=fp16")
    assert main(["bench", "--env", "gym:CartPole-v1", "--precision", "half"]) == 2
    assert "run.precision" in capsys.readouterr().err


def test_bf16_run_trains_and_records_its_precision(tmp_path):
    logdir = tmp_path / "run"
    assert main(train_args(logdir, "gym:CartPole-v1", 100, "--set", "run.precision=bf16")) == 0
    text = (logdir / "config.yaml").read_text()
    assert text.startswith("# this process: device cpu, precision bf16 (run.precision: bf16)")
    assert "precision: bf16" in text


@pytest.fixture
def fp32_flags():
    """The process-wide TF32 switches, restored after the test."""
    saved = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    benchmark = torch.backends.cudnn.benchmark
    yield
    torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved
    torch.backends.cudnn.benchmark = benchmark


@pytest.mark.parametrize("setting, expected", [("fp32", "ieee"), ("bf16", "ieee"), ("auto", "ieee"), ("tf32", "tf32")])
def test_fp32_means_ieee_fp32_on_cuda_and_tf32_only_when_asked(monkeypatch, fp32_flags, setting, expected):
    """TF32 was on for every fp32 matmul, and cuDNN's default rounds fp32 convolutions to TF32."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    torch.backends.cuda.matmul.fp32_precision = "tf32"  # whatever an earlier library left
    torch.backends.cudnn.conv.fp32_precision = "tf32"
    precision.configure_backend(setting, CUDA0)
    assert torch.backends.cuda.matmul.fp32_precision == expected
    assert torch.backends.cudnn.conv.fp32_precision == expected
    assert precision.uses_tf32(setting, CUDA0) == (expected == "tf32")
    assert precision.describe(setting, CUDA0).endswith(f"TF32 {'on' if expected == 'tf32' else 'off'}")


def test_tf32_is_fp32_off_cuda(fp32_flags):
    before = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    precision.configure_backend("tf32", torch.device("cpu"))
    assert (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision) == before
    assert precision.compute_dtype("tf32", torch.device("cpu")) == torch.float32
    assert precision.describe("tf32", torch.device("cpu")) == "fp32"


# -- 3. ranks skip together and resume from one checkpoint ----------------------------------------------


def _skip_main(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    optimizer = Optimizer(OptimConfig(lr=0.1, eps=1e-8, clip=100.0), layer.parameters())
    optimizer.zero_grad()
    layer(torch.ones(1, 3)).sum().backward()  # the same, finite gradient on both ranks
    loss = torch.tensor(float("inf") if rank == 1 else 1.0)  # only rank 1's own loss is not finite
    optimizer.clip_and_step(loss)
    torch.save({"weight": layer.weight.detach().clone(), "skipped": optimizer.skipped.item()}, f"{out}/{rank}.pt")
    dist.destroy_process_group()


def test_a_nonfinite_loss_on_one_rank_skips_the_step_on_every_rank(tmp_path):
    mp.spawn(_skip_main, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"{r}.pt") for r in range(2)]
    torch.manual_seed(0)
    start = nn.Linear(3, 2).weight.detach()
    assert [r["skipped"] for r in ranks] == [1.0, 1.0]
    for r in ranks:
        assert torch.equal(r["weight"], start)


def _choice_main(rank: int, store: str, directory: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    if rank == 0:  # rank 0 cannot read the newest file (e.g. a stale network-filesystem view); rank 1 can
        real_read = checkpoint._read

        def read(path, map_location):
            if path.name == "ckpt-0000000020.pt":
                raise checkpoint.CheckpointError(f"checkpoint {path} is unreadable: simulated")
            return real_read(path, map_location)

        checkpoint._read = read
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("dreamer").addHandler(handler)
    path, payload = checkpoint.load_latest_on_all_ranks(Path(directory))
    assert any("falling back" in r.getMessage() for r in records) == (rank == 0)
    Path(out, f"{rank}.txt").write_text(f"{path.name} {payload['step']}")
    dist.destroy_process_group()


def test_ranks_resume_from_the_checkpoint_rank0_chose(tmp_path):
    directory = tmp_path / "checkpoints"
    for step in (10, 20):
        checkpoint.save(directory, step, {"step": step, "config": "", "agent": {}})
    mp.spawn(_choice_main, args=(str(tmp_path / "store"), str(directory), str(tmp_path)), nprocs=2, join=True)
    assert [(tmp_path / f"{r}.txt").read_text() for r in range(2)] == ["ckpt-0000000010.pt 10"] * 2


# -- 4. output layers in fp32 under autocast -------------------------------------------------------------


def test_output_layers_compute_in_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    agent = Agent(tiny_config(), obs_space(vector=3), act_space(discrete=False, size=2))
    wm, behavior = agent.wm, agent.behavior
    feat = torch.randn(5, wm.rssm.feat_dim)
    outputs = {
        "reward": lambda: wm.reward(feat), "cont": lambda: wm.cont(feat), "critic": lambda: behavior.critic(feat),
        "actor": lambda: behavior.actor.out(behavior.actor.mlp(feat)),
        "prior": lambda: wm.rssm.prior_net(feat[:, : wm.rssm.cfg.deter]),
        "posterior": lambda: wm.rssm.post_out(torch.randn(5, wm.rssm.cfg.hidden)),
        "image": lambda: wm.decoder.predict(feat)["image"], "vector": lambda: wm.decoder.predict(feat)["vector"],
    }
    for layer in (wm.reward.out, behavior.critic.out):
        nn.init.normal_(layer.weight)  # zero at init; give them something to round
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for name, fn in outputs.items():
            assert fn().dtype == torch.float32, name
        hidden = behavior.critic.mlp(feat)  # bf16
        assert hidden.dtype == torch.bfloat16
        logits = behavior.critic.out(hidden)
    exact = nn.functional.linear(hidden.float(), behavior.critic.out.weight, behavior.critic.out.bias)
    torch.testing.assert_close(logits, exact, rtol=1e-6, atol=1e-6)  # not rounded to bf16 (2^-8)


# -- 5. the frozen world model is cast once per update ----------------------------------------------------


class CountCasts(TorchDispatchMode):
    """Counts conversions to bf16 of fp32 tensors of one shape (casts, copies, list copies)."""

    def __init__(self, shape):
        super().__init__()
        self.shape, self.count = tuple(shape), 0

    def _is_source(self, t) -> bool:
        return isinstance(t, torch.Tensor) and tuple(t.shape) == self.shape and t.dtype == torch.float32

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func == torch.ops.aten._to_copy.default and kwargs.get("dtype") == torch.bfloat16:
            self.count += self._is_source(args[0])
        elif func == torch.ops.aten.copy_.default and args[0].dtype == torch.bfloat16:
            self.count += self._is_source(args[1])
        elif func == torch.ops.aten._foreach_copy_.default:
            self.count += sum(dst.dtype == torch.bfloat16 and self._is_source(src) for dst, src in zip(*args[:2]))
        return func(*args, **kwargs)


@pytest.mark.parametrize("discrete", [True, False])
def test_imagination_casts_world_model_weights_once_per_update(discrete):
    counts = {}
    for horizon in (2, 6):
        torch.manual_seed(0)
        agent = Agent(tiny_config("run.precision=bf16", f"behavior.horizon={horizon}"),
                      obs_space(image=False, vector=3), act_space(discrete=discrete, size=2))
        batch = random_batch(obs_space(image=False, vector=3), act_space(discrete=discrete, size=2))
        post, _ = agent.train_world_model(batch)
        gru = agent.wm.rssm.gru.linear.weight
        with CountCasts(gru.shape) as casts:
            agent.train_behavior(post, batch)
        counts[horizon] = casts.count
        with agent.autocast():
            view = agent.frozen_world_model()
        assert view.rssm.gru.linear.weight.dtype == torch.bfloat16
        assert torch.equal(view.rssm.gru.linear.weight, agent.wm.rssm.gru.linear.weight.detach().bfloat16())
    assert counts[2] == counts[6] == 1


def test_frozen_view_aliases_fp32_weights_and_follows_the_optimiser():
    torch.manual_seed(0)
    agent = Agent(tiny_config(), obs_space(image=False, vector=3), act_space())
    batch = random_batch(obs_space(image=False, vector=3), act_space())
    view = agent.frozen_world_model()
    live = agent.wm.rssm.gru.linear.weight
    assert view.rssm.gru.linear.weight.data_ptr() == live.data_ptr()  # no copy in fp32
    assert view.encoder is None and view.decoder is None  # imagination never calls them
    assert not any(True for _ in view.parameters())  # nothing there can get a gradient
    before = live.detach().clone()
    agent.train(batch)
    assert not torch.equal(live, before)
    assert torch.equal(agent.frozen_world_model().rssm.gru.linear.weight, live.detach())


# -- 6. Docker with several GPUs ------------------------------------------------------------------------


def test_docker_docs_give_nccl_enough_shared_memory():
    root = Path(__file__).resolve().parent.parent
    assert "--ipc=host" in (root / "README.md").read_text()
    assert "--ipc=host" in (root / "docker" / "Dockerfile").read_text()
