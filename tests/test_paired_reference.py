"""scripts/paired_reference.py: its parsing, pairing order, table and commit check, with stand-ins for
both sides (the timings themselves are a benchmark, BENCHMARKS.md, and not part of the suite)."""

import importlib.util
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "paired_reference.py"
spec = importlib.util.spec_from_file_location("paired_reference", SCRIPT)
paired = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paired)


def pair(size, setting, rnd, reference_s, ours_s, ours_precision="bf16"):
    return {"size": size, "setting": setting, "round": rnd, "reference_s": reference_s, "ours_s": ours_s,
            "ours_precision": ours_precision, "reference_precision": "fp32"}


def test_table_has_each_pair_its_ratio_and_the_median_per_setting():
    pairs = [pair("xs", "auto", 2, 7.5, 3.0), pair("xs", "auto", 1, 8.0, 4.0),
             pair("xs", "fp32", 1, 6.0, 4.0, "fp32"), pair("xs", "auto", 3, 12.0, 3.0)]
    lines = paired.tabulate(pairs).splitlines()
    assert lines[0] == ("| size | precision: ours (setting) / reference | pair 1 (reference s / ours s) "
                        "| pair 2 (reference s / ours s) | pair 3 (reference s / ours s) | median ratio |")
    assert lines[1] == "|---|---|---|---|---|---:|"
    # rounds in order; the median of 2.0, 2.5 and 4.0, not their mean
    assert lines[2] == ("| xs | ours bf16 (auto) / reference fp32 | 8.00 / 4.00 = 2.00 | 7.50 / 3.00 = 2.50 "
                        "| 12.00 / 3.00 = 4.00 | **2.50** |")
    # a setting with fewer pairs leaves its other cells empty
    assert lines[3] == "| xs | ours fp32 (fp32) / reference fp32 | 6.00 / 4.00 = 1.50 |  |  | **1.50** |"


def test_ratio_refuses_a_time_that_is_not_positive():
    assert paired.ratio(6.0, 4.0) == 1.5
    with pytest.raises(paired.PairedError):
        paired.ratio(6.0, 0.0)


def test_bench_output_is_read_past_log_lines():
    result = {"update_ms": 3612.5, "precision": "bf16", "size": "xs"}
    text = "dreamer: building the agent\n" + json.dumps(result, indent=2) + "\n"
    assert paired.parse_bench_output(text) == result
    with pytest.raises(paired.PairedError, match="no JSON"):
        paired.parse_bench_output("dreamer: out of memory\n")
    with pytest.raises(paired.PairedError, match="precision"):
        paired.parse_bench_output(json.dumps({"update_ms": 1.0}))


def test_reference_output_is_its_last_result_line():
    text = "\n".join(["prefill 1000 steps", '{"not": "a result"}', '{"median_s": 8.17, "size": "xs"}',
                      "{broken", ""])
    assert paired.parse_reference_output(text)["median_s"] == 8.17
    with pytest.raises(paired.PairedError):
        paired.parse_reference_output('update 0: 9.1s\n{"size": "xs"}\n')


def test_processes_alternate_reference_then_ours():
    order = paired.schedule(["xs", "s"], ["auto", "fp32"], rounds=2)
    assert order[:4] == [("xs", "auto", 1, "reference"), ("xs", "auto", 1, "ours"),
                         ("xs", "auto", 2, "reference"), ("xs", "auto", 2, "ours")]
    assert len(order) == 2 * 2 * 2 * 2
    assert [side for *_, side in order] == ["reference", "ours"] * 8


def test_reference_widths_follow_our_presets():
    xs = paired.reference_overrides("xs")
    assert (xs["dyn_deter"], xs["units"], xs["encoder.cnn_depth"], xs["critic.layers"]) == (256, 256, 24, 1)
    s = paired.reference_overrides("s")
    assert (s["dyn_deter"], s["decoder.cnn_depth"], s["actor.layers"]) == (512, 32, 2)
    assert (xs["precision"], xs["compile"], xs["batch_size"], xs["batch_length"]) == (32, False, 16, 64)
    with pytest.raises(paired.PairedError, match="no reference widths"):
        paired.reference_overrides("xl")


def git(path, *args):
    return subprocess.run(["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    repo = tmp_path / "reference"
    repo.mkdir()
    git(repo, "init", "-q")
    for name in ("first", "second"):
        (repo / "file").write_text(name)
        git(repo, "add", "file")
        git(repo, "commit", "-q", "-m", name)
    return repo


def test_commit_check(checkout, tmp_path):
    head, first = git(checkout, "rev-parse", "HEAD"), git(checkout, "rev-parse", "HEAD~1")
    assert paired.verify_commit(checkout, head[:7]) == head
    with pytest.raises(paired.PairedError, match=f"is at {head[:12]}, not at {first[:7]}"):
        paired.verify_commit(checkout, first[:7])
    with pytest.raises(paired.PairedError, match="not in the repository"):
        paired.verify_commit(checkout, "0123456789abcdef")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(paired.PairedError, match="not a git checkout"):
        paired.verify_commit(plain, head)
    (checkout / "sub").mkdir()
    with pytest.raises(paired.PairedError, match="not the top"):
        paired.verify_commit(checkout / "sub", head)


def stand_in(path: Path, log: Path, side: str, output: str) -> Path:
    """An executable that records its turn in `log` and prints `output`."""
    path.write_text(f"#!{sys.executable}\n"
                    f"import sys\nopen({str(log)!r}, 'a').write({side!r} + ' ' + ' '.join(sys.argv[1:]) + '\\n')\n"
                    f"print({output!r})\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_run_alternates_sides_and_writes_table_and_raw_json(checkout, tmp_path):
    log = tmp_path / "turns.log"
    reference = stand_in(tmp_path / "ref-python", log, "reference",
                         'prefill done\n{"median_s": 8.0, "update_s": [9.0, 8.0, 8.0], "size": "xs"}')
    ours = stand_in(tmp_path / "ours", log, "ours", 'dreamer: bench\n{\n "update_ms": 4000.0, "precision": "bf16"\n}')
    out = tmp_path / "out" / "paired"
    head = git(checkout, "rev-parse", "HEAD")
    paired.main(["--reference-checkout", str(checkout), "--reference-commit", head[:8],
                 "--reference-python", str(reference), "--dreamer", str(ours), "--rounds", "2", "--out", str(out)])
    turns = log.read_text().splitlines()
    assert [t.split()[0] for t in turns] == ["reference", "ours", "reference", "ours"]
    assert "--reference-worker" in turns[0] and "--precision auto" in turns[1]
    assert (tmp_path / "out" / "paired.md").read_text().splitlines()[2] == (
        "| xs | ours bf16 (auto) / reference fp32 | 8.00 / 4.00 = 2.00 | 8.00 / 4.00 = 2.00 | **2.00** |")
    raw = json.loads((tmp_path / "out" / "paired.json").read_text())
    assert raw["reference"]["commit"] == head
    assert "commit" in raw["ours"]
    assert [p["ratio"] for p in raw["pairs"]] == [2.0, 2.0]
    assert raw["pairs"][0]["reference"]["update_s"] == [9.0, 8.0, 8.0]


def test_wrong_commit_stops_with_one_line(checkout):
    first = git(checkout, "rev-parse", "HEAD~1")
    with pytest.raises(SystemExit) as stop:
        paired.main(["--reference-checkout", str(checkout), "--reference-commit", first])
    message = str(stop.value.code)
    assert message.startswith("paired_reference: ") and "\n" not in message
