"""``image.encode``: choose the stored format and quality explicitly (and rename the field to match)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mmprep.codecs import encode_image
from mmprep.errors import Drop
from mmprep.sample import Sample, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.image.common import decoded_images

_CANON = {"jpeg": "jpg", "tif": "tiff"}


class EncodeConfig(StageConfig):
    format: Literal["jpg", "png", "webp", "keep"] = Field(
        "jpg", description="Stored format; the field's extension becomes it (png -> jpg). keep: the field's own.")
    quality: int = Field(95, ge=1, le=100, description="JPEG / WebP quality (WebP 100 = lossless).")
    png_compression: int = Field(3, ge=0, le=9, description="zlib level for PNG (lossless at every level).")
    keep_original: bool = Field(True, description="When no pixel stage ran and the format is unchanged, store "
                                                 "the original bytes untouched instead of re-encoding.")


@register
class ImageEncode(Stage):
    """Encode every image to bytes as JPEG / PNG / WebP with the given quality; the last image stage."""

    name = "image.encode"
    reads = ("image",)
    writes = ("image",)
    Config = EncodeConfig

    def process(self, sample: Sample) -> Sample:
        c = self.config
        for ext, image in decoded_images(sample, self.name):
            head, _, last = ext.rpartition(".")
            fmt = _CANON.get(last, last) if c.format == "keep" else c.format
            target = f"{head}.{fmt}" if head else fmt
            if target != ext and target in sample:
                raise Drop("image.field_clash", f".{ext} -> .{target}, but the sample already has .{target}",
                           field=ext)
            if c.keep_original and image.source is not None and _CANON.get(image.format or "", image.format) == fmt:
                data = image.source
            else:
                data = encode_image(image.pixels, target, jpeg_quality=c.quality, webp_quality=c.quality,
                                    png_compression=c.png_compression)
            del sample[ext]
            sample[target] = data
            info = meta(sample).setdefault("image", {})
            if ext in info and target != ext:
                info[target] = info.pop(ext)
            info.setdefault(target, {})["stored"] = "original" if data is image.source else f"{fmt}"
        return sample
