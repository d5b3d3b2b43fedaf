"""``image.decode``: encoded bytes -> RGB pixels (:class:`~mmprep.sample.Image`)."""

from __future__ import annotations

import numpy as np

from mmprep.errors import Drop
from mmprep.sample import Image, Sample, fields_of
from mmprep.stage import Stage, StageConfig, register


@register
class ImageDecode(Stage):
    """Decode JPEG/PNG/WebP/BMP/TIFF to RGB pixels; the original bytes are kept until pixels change."""

    name = "image.decode"
    reads = ("image",)
    writes = ("image",)

    class Config(StageConfig):
        pass

    def process(self, sample: Sample) -> Sample:
        import cv2

        for ext in fields_of(sample, "image"):
            data = sample[ext]
            if isinstance(data, Image):
                continue
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if pixels is None:
                raise Drop("image.corrupt", f".{ext} is not a decodable image", field=ext)
            sample[ext] = Image(pixels=cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB), source=data, format=ext)
            sample.setdefault("__meta__", {}).setdefault("image", {})[ext] = {
                "width": int(pixels.shape[1]), "height": int(pixels.shape[0])}
        return sample
