"""Does a file named like an image decode as one?"""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError


def image_problem(path: Path) -> str | None:
    """None for a readable image, else what is wrong with it. `verify()` checks the file's structure without
    decoding every pixel, so it stays cheap for large datasets."""
    try:
        # Pillow only warns below twice its pixel limit; an image that large is refused all the same.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.verify()
    except UnidentifiedImageError:
        return "non-image file posing as image: its content is not an image format Pillow can read"
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"image too large to decode safely: {exc}"
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated or corrupt data as OSError or SyntaxError depending on the format.
        return f"damaged image: {exc}"
    return None
