"""What every pixel stage does first: find the decoded images of a sample."""

from __future__ import annotations

from mmprep.errors import Drop
from mmprep.sample import Image, Sample, fields_of


def decoded_images(sample: Sample, stage: str) -> list[tuple[str, Image]]:
    """``(field, Image)`` for each image field; a field still holding bytes means ``image.decode`` was left out."""
    out = []
    for ext in fields_of(sample, "image"):
        value = sample[ext]
        if not isinstance(value, Image):
            raise Drop("image.not_decoded", f"{stage} needs decoded pixels in .{ext}: put image.decode before it",
                       field=ext)
        out.append((ext, value))
    return out
