"""Run logs: TensorBoard scalars and the same values as lines of `metrics.jsonl`."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from tensorboard.compat.proto import summary_pb2
from torch.utils.tensorboard import SummaryWriter

from dreamer.checkpoint import atomic_write


class Mean:
    """Running means of named scalars between two log writes; the keys in `totals` are reported as
    sums. Non-finite values are left out, so one bad value does not erase its key's interval."""

    def __init__(self, totals: tuple[str, ...] = ()):
        self.totals = totals
        self.sums: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            if math.isfinite(value):
                self.sums[key] += value
                self.counts[key] += 1

    def state_dict(self) -> dict[str, dict]:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, dict]) -> None:
        self.sums.update(state["sums"])
        self.counts.update(state["counts"])

    def pop(self) -> dict[str, float]:
        out = {k: self.sums[k] if k in self.totals else self.sums[k] / self.counts[k] for k in self.sums}
        self.sums.clear()
        self.counts.clear()
        return out


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSONL log (empty if the file does not exist). A last line cut short (the
    process was killed while writing it) is left out; a broken line before it is an error."""
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number < len(lines):
                raise ValueError(f"{path}:{number} is not a JSON record ({err})") from None
    return records


def _open_jsonl(path: Path, resume_step: int):
    """Open a JSONL log for appending, first dropping lines past `resume_step` (left by a run that
    went on after its last checkpoint), so no step appears twice."""
    if path.exists():
        kept = [record for record in read_jsonl(path) if record.get("step", 0) <= resume_step]
        atomic_write(path, lambda f: f.write("".join(json.dumps(r) + "\n" for r in kept).encode()))
    return open(path, "a")


def _append(file, record: dict) -> None:
    """One JSON line, flushed; an OS error (a full disk) is raised naming the file."""
    try:
        file.write(json.dumps(record) + "\n")
        file.flush()
    except OSError as err:
        raise OSError(err.errno, err.strerror or str(err), file.name) from err


class Logger:
    """Scalars to TensorBoard and `metrics.jsonl`; every finished episode to `episodes.jsonl`."""

    def __init__(self, logdir: Path, resume_step: int = 0):
        self.jsonl = _open_jsonl(logdir / "metrics.jsonl", resume_step)
        self.episodes = _open_jsonl(logdir / "episodes.jsonl", resume_step)
        self.writer = SummaryWriter(str(logdir), purge_step=resume_step + 1 if resume_step else None)

    def write(self, step: int, values: dict[str, float]) -> None:
        values = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        _append(self.jsonl, {"step": step, **values})

    def gif(self, tag: str, data: bytes, height: int, width: int, step: int) -> None:
        """An animated GIF as a TensorBoard image summary (shown animated in the Images tab)."""
        image = summary_pb2.Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=data)
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=image)])
        # SummaryWriter.add_video builds the same summary but needs moviepy to encode the GIF.
        self.writer._get_file_writer().add_summary(summary, step)

    def figure(self, tag: str, figure, step: int) -> None:
        self.writer.add_figure(tag, figure, step)

    def episode(self, step: int, episode: dict[str, float]) -> None:
        _append(self.episodes, {"step": step, **episode})

    def close(self) -> None:
        self.writer.close()
        self.jsonl.close()
        self.episodes.close()
