"""``image.resize``: the img2dataset resize modes, with the interpolation picked for down- or up-scaling."""

from __future__ import annotations

from pydantic import Field

from mmprep.errors import Drop
from mmprep.sample import Sample, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.image.common import decoded_images
from mmprep.stages.image.geometry import RGB, Border, Interp, ResizeMode, Side, resize

MAX_OUTPUT_PIXELS = 90_000_000  # as image.decode's max_pixels default


class ResizeConfig(StageConfig):
    size: int = Field(256, ge=1, description="Target side in pixels.")
    mode: ResizeMode = Field("center_crop", description="no | keep_ratio | center_crop | pad.")
    side: Side = Field("shorter", description="keep_ratio: which side becomes `size`.")
    down: Interp = Field("area", description="Interpolation when shrinking (area avoids aliasing).")
    up: Interp = Field("cubic", description="Interpolation when enlarging.")
    upscale: bool = Field(True, description="Enlarge images smaller than the target (else leave them as they are).")
    border: Border = Field("constant", description="pad: constant colour, replicate the edge (copy fill) or "
                                                   "reflect it (mirror fill).")
    color: RGB = Field((0, 0, 0), description="pad with border=constant: the RGB fill colour.")


@register
class ImageResize(Stage):
    """Resize every image: keep_ratio (shorter or longer side), center_crop or pad to a square."""

    name = "image.resize"
    version = "2"  # 2: keep_ratio outputs over 90 MP are dropped (image.too_large)
    reads = ("image",)
    writes = ("image",)
    Config = ResizeConfig

    def process(self, sample: Sample) -> Sample:
        c = self.config
        for ext, image in decoded_images(sample, self.name):
            h, w = image.pixels.shape[:2]
            if c.mode == "keep_ratio" and c.side == "shorter" and h and w and (c.upscale or c.size <= min(h, w)):
                # the longer side grows by the same factor: a 1x20000 banner at size 256 would be 256x5.1M
                nw, nh = round(w * c.size / min(h, w)), round(h * c.size / min(h, w))
                if nw * nh > MAX_OUTPUT_PIXELS:
                    raise Drop("image.too_large", f".{ext}: {w}x{h} with its shorter side at {c.size} would be "
                               f"{nw}x{nh} = {nw * nh / 1e6:.0f} MP (> {MAX_OUTPUT_PIXELS / 1e6:.0f} MP)", field=ext)
            out = resize(image.pixels, c.size, c.mode, side=c.side, down=c.down, up=c.up, upscale=c.upscale,
                         border=c.border, color=c.color)
            if out is not image.pixels:
                sample[ext] = image.replace(out)
            info = meta(sample).setdefault("image", {}).setdefault(ext, {})
            info["resized"] = [int(out.shape[1]), int(out.shape[0])]
        return sample
