"""Pictures of open-loop predictions: animation frames, contact sheets, vector plots, file writers.

Frame layout (one animation frame per time step): one column per sequence, rows truth /
prediction / error, each cell framed in the context colour while the model still sees real frames
and in the imagination colour once it predicts open-loop, with the predicted reward and continue
probability printed under the cell.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CONTEXT_COLOUR = (40, 160, 70)  # green: the model observes this frame
IMAGINED_COLOUR = (220, 60, 40)  # red: open-loop prediction
MISSING_COLOUR = (90, 90, 90)  # no ground truth (actions from the policy)
BORDER = 2
TEXT_HEIGHT = 12
ROW_NAMES = ("truth", "model", "error")
LABEL_WIDTH = 60


def _cell(image: np.ndarray | None, shape: tuple[int, ...], scale: int, colour: tuple[int, int, int],
          caption: str) -> Image.Image:
    """One framed, scaled frame with a caption below. `image` (H, W, 3) uint8, or None for a grey
    cell of `shape` (where no ground truth exists)."""
    h, w = shape[:2]
    inner = Image.new("RGB", (w * scale, h * scale), MISSING_COLOUR)
    if image is not None:
        inner = Image.fromarray(image).resize((w * scale, h * scale), Image.NEAREST)
    cell = Image.new("RGB", (w * scale + 2 * BORDER, h * scale + 2 * BORDER + TEXT_HEIGHT), (255, 255, 255))
    ImageDraw.Draw(cell).rectangle([0, 0, w * scale + 2 * BORDER - 1, h * scale + 2 * BORDER - 1], fill=colour)
    cell.paste(inner, (BORDER, BORDER))
    if caption:
        ImageDraw.Draw(cell).text((BORDER, h * scale + 2 * BORDER), caption, fill=(0, 0, 0), font=ImageFont.load_default())
    return cell


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8, clipped."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def error_image(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """|truth - prediction| per pixel as uint8 (black where they agree)."""
    return to_uint8(np.abs(truth.astype(np.float32) / 255.0 - pred))


def _cells(result: dict, k: int, t: int, scale: int) -> list[Image.Image]:
    """Truth, model and error cells of sequence k at step t."""
    colour = CONTEXT_COLOUR if t < result["context"] else IMAGINED_COLOUR
    has_truth = bool(result["has_truth"][k, t])
    truth = result["truth_image"][k, t] if has_truth else None
    pred = result["pred_image"][k, t]
    caption = f"r {result['pred_reward'][k, t]:+.2f} c {result['pred_cont'][k, t]:.2f}"
    return [
        _cell(truth, pred.shape, scale, colour, ""),
        _cell(to_uint8(pred), pred.shape, scale, colour, caption),
        _cell(error_image(truth, pred) if has_truth else None, pred.shape, scale, colour, ""),
    ]


def _labelled_grid(cells: list[list[Image.Image]], labels: list[str], title: str, colour) -> Image.Image:
    """Paste rows of equal cells under a title line, with a label left of each row."""
    cell_w, cell_h = cells[0][0].size
    label_w, header = LABEL_WIDTH, TEXT_HEIGHT + 2
    grid = Image.new("RGB", (label_w + len(cells[0]) * cell_w, header + len(cells) * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default()
    draw.text((2, 1), title, fill=colour, font=font)
    for row, (label, row_cells) in enumerate(zip(labels, cells)):
        draw.text((2, header + row * cell_h + cell_h // 2 - 6), label, fill=(0, 0, 0), font=font)
        for col, cell in enumerate(row_cells):
            grid.paste(cell, (label_w + col * cell_w, header + row * cell_h))
    return grid


def frame_grid(result: dict, t: int, scale: int) -> Image.Image:
    """The animation frame of step t: columns = sequences, rows = truth / model / error."""
    columns = [_cells(result, k, t, scale) for k in range(len(result["pred_image"]))]
    rows = [list(row) for row in zip(*columns)]
    imagined = t >= result["context"]
    title = f"t={t} {'imagined' if imagined else 'context'}"
    return _labelled_grid(rows, list(ROW_NAMES), title, IMAGINED_COLOUR if imagined else CONTEXT_COLOUR)


def animation_frames(result: dict, scale: int) -> np.ndarray:
    """(T, H, W, 3) uint8 frames, padded to multiples of 16 for video codecs."""
    frames = [np.asarray(frame_grid(result, t, scale)) for t in range(result["pred_image"].shape[1])]
    h, w = frames[0].shape[:2]
    ph, pw = -h % 16, -w % 16
    return np.stack([np.pad(f, ((0, ph), (0, pw), (0, 0)), constant_values=255) for f in frames])


def contact_sheet(result: dict, scale: int) -> np.ndarray:
    """One image: time runs left to right; each sequence has three rows (truth, model, error)."""
    sequences, steps = result["pred_image"].shape[:2]
    rows, labels = [], []
    for k in range(sequences):
        per_step = [_cells(result, k, t, scale) for t in range(steps)]
        for r, name in enumerate(ROW_NAMES):
            rows.append([cells[r] for cells in per_step])
            labels.append(f"{k}: {name}")
    title = f"steps 0-{result['context'] - 1} context (green), {result['context']}-{steps - 1} imagined (red)"
    return np.asarray(_labelled_grid(rows, labels, title, (0, 0, 0)))


def gif_bytes(frames: np.ndarray, fps: int) -> bytes:
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", frames, extension=".gif", duration=1000 / fps, loop=0)


def write_media(path: Path, result: dict, scale: int, fps: int) -> None:
    """Write `.gif`, `.mp4` (animations) or `.png` (contact sheet) by the file's extension."""
    import imageio.v3 as iio

    from dreamer.checkpoint import atomic_write

    suffix = path.suffix.lower()
    if suffix == ".png":
        data = iio.imwrite("<bytes>", contact_sheet(result, scale), extension=".png")
    elif suffix == ".gif":
        data = gif_bytes(animation_frames(result, scale), fps)
    elif suffix == ".mp4":
        data = iio.imwrite("<bytes>", animation_frames(result, scale), extension=".mp4", fps=fps)
    else:
        raise ValueError(f"unknown output type {suffix!r} for {path}; accepted: .gif, .mp4, .png")
    atomic_write(path, lambda f: f.write(data))


def vector_plot(result: dict, path: Path | None = None, max_dims: int = 6):
    """Predicted vs real vector components and rewards over time, one column per sequence.
    Writes a PNG when `path` is given; returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred, truth = result["pred_vector"], result["truth_vector"]
    sequences, steps, dims = pred.shape
    rows = min(dims, max_dims) + 1
    fig, axes = plt.subplots(rows, sequences, figsize=(3 * sequences, 1.6 * rows), squeeze=False, sharex=True)
    time = np.arange(steps)
    for k in range(sequences):
        series = [(f"x[{d}]", truth[k, :, d], pred[k, :, d]) for d in range(rows - 1)]  # NaN = no truth
        series.append(("reward", result["truth_reward"][k], result["pred_reward"][k]))
        for row, (name, real, model) in enumerate(series):
            ax = axes[row, k]
            if real is not None:
                ax.plot(time, real, color="black", lw=1, label="real")
            ax.plot(time, model, color="tab:red", lw=1, ls="--", label="model")
            ax.axvspan(0, result["context"] - 0.5, color="tab:green", alpha=0.12)
            ax.set_ylabel(name if k == 0 else "")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    fig.suptitle(f"open loop after {result['context']} context steps (green), actions: {result['actions']}")
    fig.tight_layout()
    if path is not None:
        from dreamer.checkpoint import atomic_write

        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
        atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return fig
