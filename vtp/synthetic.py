"""A tiny synthetic image-classification dataset (coloured shapes) as an imagefolder archive.

One shape and colour per class, so a small model learns it within an epoch or two: real training stays
affordable in tests and demos. Pillow and numpy only (no torch), deterministic for a seed.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

_COLOURS = [
    (220, 40, 40),
    (40, 180, 60),
    (40, 80, 220),
    (230, 200, 40),
    (180, 60, 200),
    (40, 200, 200),
    (240, 130, 30),
    (120, 120, 120),
]
_SHAPES = ["circle", "square", "triangle", "cross"]
# Fixed timestamp so the archive bytes depend only on the arguments.
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def class_names(classes: int) -> list[str]:
    return [f"class_{i:02d}_{_SHAPES[i % len(_SHAPES)]}" for i in range(classes)]


def _draw(rng: np.random.Generator, index: int, size: int) -> bytes:
    background = tuple(int(v) for v in rng.integers(0, 60, size=3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    colour = tuple(min(255, max(0, c + int(rng.integers(-20, 21)))) for c in _COLOURS[index % len(_COLOURS)])
    half = int(size * rng.uniform(0.2, 0.35))
    cx, cy = (int(rng.integers(half, size - half + 1)) for _ in range(2))
    box = (cx - half, cy - half, cx + half, cy + half)
    shape = _SHAPES[index % len(_SHAPES)]
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill=colour)
    else:
        width = max(2, half // 2)
        draw.rectangle((cx - half, cy - width, cx + half, cy + width), fill=colour)
        draw.rectangle((cx - width, cy - half, cx + width, cy + half), fill=colour)
    noise = rng.integers(-12, 13, size=(size, size, 3))
    pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def make_imagefolder_archive(
    dest: Path,
    classes: int = 3,
    train_per_class: int = 12,
    val_per_class: int = 4,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """Write a zip with `train/<class>/*.png` and `val/<class>/*.png` to `dest` (a file, or a folder to put
    `synthetic-shapes.zip` in) and return its path."""
    if classes < 2:
        raise ValueError("classes must be at least 2")
    dest = Path(dest)
    if dest.is_dir() or not dest.suffix:
        dest = dest / "synthetic-shapes.zip"
    dest.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = class_names(classes)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as archive:
        for split, count in (("train", train_per_class), ("val", val_per_class)):
            for index, name in enumerate(names):
                for n in range(count):
                    info = zipfile.ZipInfo(f"{split}/{name}/{n:04d}.png", date_time=_ZIP_TIME)
                    archive.writestr(info, _draw(rng, index, size))
    return dest


def _yolo_sample(rng: np.random.Generator, classes: int, size: int, segment: bool) -> tuple[bytes, list[str]]:
    """One image with 1-3 shapes on noise and its label lines: `cls cx cy w h` (detect) or
    `cls x1 y1 x2 y2 ...` (segment), all normalised to 0..1."""
    noise = rng.integers(0, 70, size=(size, size, 3)).astype(np.uint8)
    image = Image.fromarray(noise)
    draw = ImageDraw.Draw(image)
    lines = []
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(0, classes))
        colour = tuple(
            min(255, max(0, c + int(rng.integers(-15, 16)))) for c in _COLOURS[cls % len(_COLOURS)]
        )
        w, h = (int(rng.integers(max(6, size // 6), max(7, size // 2))) for _ in range(2))
        x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        x1, y1 = x0 + w, y0 + h
        # Even classes are rectangles, odd ones ellipses: shape and colour both tell the class.
        ellipse = cls % 2 == 1
        if ellipse:
            draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=colour)
        if not segment:
            lines.append(
                f"{cls} {(x0 + x1) / 2 / size:.6f} {(y0 + y1) / 2 / size:.6f} {w / size:.6f} {h / size:.6f}"
            )
            continue
        if ellipse:
            angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            points = [((x0 + x1) / 2 + np.cos(a) * w / 2, (y0 + y1) / 2 + np.sin(a) * h / 2) for a in angles]
        else:
            points = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
        coords = " ".join(f"{min(1.0, max(0.0, v / size)):.6f}" for point in points for v in point)
        lines.append(f"{cls} {coords}")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue(), lines


def _make_yolo_archive(
    dest: Path, name: str, classes: int, train: int, val: int, size: int, seed: int, segment: bool
) -> Path:
    if classes < 1:
        raise ValueError("classes must be at least 1")
    if size < 16:
        raise ValueError("size must be at least 16")
    dest = Path(dest)
    if dest.is_dir() or not dest.suffix:
        dest = dest / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = "\n".join(f"  {i}: {label}" for i, label in enumerate(yolo_class_names(classes)))
    data_yaml = f"path: .\ntrain: images/train\nval: images/val\nnames:\n{names}\n"
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(zipfile.ZipInfo("data.yaml", date_time=_ZIP_TIME), data_yaml)
        for split, count in (("train", train), ("val", val)):
            for n in range(count):
                image, lines = _yolo_sample(rng, classes, size, segment)
                archive.writestr(zipfile.ZipInfo(f"images/{split}/{n:04d}.png", date_time=_ZIP_TIME), image)
                label = "".join(line + "\n" for line in lines)
                archive.writestr(zipfile.ZipInfo(f"labels/{split}/{n:04d}.txt", date_time=_ZIP_TIME), label)
    return dest


def yolo_class_names(classes: int) -> list[str]:
    return [f"{'ellipse' if i % 2 else 'box'}_{i:02d}" for i in range(classes)]


def make_yolo_detect_archive(
    dest: Path, classes: int = 2, train: int = 16, val: int = 4, size: int = 64, seed: int = 0
) -> Path:
    """Write an Ultralytics detection dataset as a zip (`data.yaml`, `images/{train,val}/*.png`,
    `labels/{train,val}/*.txt` with `cls cx cy w h`) to `dest` (a file, or a folder to put
    `synthetic-detect.zip` in) and return its path."""
    return _make_yolo_archive(dest, "synthetic-detect.zip", classes, train, val, size, seed, segment=False)


def make_yolo_segment_archive(
    dest: Path, classes: int = 2, train: int = 16, val: int = 4, size: int = 64, seed: int = 0
) -> Path:
    """Like `make_yolo_detect_archive`, with polygon labels (`cls x1 y1 x2 y2 ...`, normalised):
    rectangles as 4 corners, ellipses as 16 points."""
    return _make_yolo_archive(dest, "synthetic-segment.zip", classes, train, val, size, seed, segment=True)
