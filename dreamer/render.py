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


def _cell(image: np.ndarray | None, scale: int, colour: tuple[int, int, int], caption: str) -> Image.Image:
    """One framed, scaled frame with a caption below. `image` (H, W, 3) uint8 or None (grey)."""
    h, w = 64, 64
    if image is not None:
        h, w = image.shape[:2]
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


def frame_grid(result: dict, t: int, scale: int) -> Image.Image:
    """The animation frame of step t: columns = sequences, rows = truth / model / error."""
    context = result["context"]
    colour = CONTEXT_COLOUR if t < context else IMAGINED_COLOUR
    columns = []
    for k in range(len(result["pred_image"])):
        has_truth = bool(result["has_truth"][k, t])
        truth = result["truth_image"][k, t] if has_truth else None
        pred = to_uint8(result["pred_image"][k, t])
        caption = f"r {result['pred_reward'][k, t]:+.2f} c {result['pred_cont'][k, t]:.2f}"
        cells = [
            _cell(truth, scale, colour, ""),
            _cell(pred, scale, colour, caption),
            _cell(error_image(truth, result["pred_image"][k, t]) if has_truth else None, scale, colour, ""),
        ]
        columns.append(cells)
    cell_w, cell_h = columns[0][0].size
    label_w = 40
    header = TEXT_HEIGHT + 2
    grid = Image.new("RGB", (label_w + len(columns) * cell_w, header + 3 * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    phase = "context" if t < context else "imagined"
    draw.text((2, 1), f"t={t} {phase}", fill=colour, font=ImageFont.load_default())
    for row, name in enumerate(ROW_NAMES):
        draw.text((2, header + row * cell_h + cell_h // 2 - 6), name, fill=(0, 0, 0), font=ImageFont.load_default())
    for col, cells in enumerate(columns):
        for row, cell in enumerate(cells):
            grid.paste(cell, (label_w + col * cell_w, header + row * cell_h))
    return grid


def animation_frames(result: dict, scale: int) -> np.ndarray:
    """(T, H, W, 3) uint8 frames, padded to multiples of 16 for video codecs."""
    frames = [np.asarray(frame_grid(result, t, scale)) for t in range(result["pred_image"].shape[1])]
    h, w = frames[0].shape[:2]
    ph, pw = -h % 16, -w % 16
    return np.stack([np.pad(f, ((0, ph), (0, pw), (0, 0)), constant_values=255) for f in frames])


def contact_sheet(result: dict, scale: int) -> np.ndarray:
    """One image: time runs left to right; for each sequence three rows (truth, model, error)."""
    steps = result["pred_image"].shape[1]
    grids = [frame_grid(result, t, scale) for t in range(steps)]
    w, h = grids[0].size
    sheet = Image.new("RGB", (w * steps, h), (255, 255, 255))
    for t, grid in enumerate(grids):
        sheet.paste(grid, (t * w, 0))
    return np.asarray(sheet)


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
