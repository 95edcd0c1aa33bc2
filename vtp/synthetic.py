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
