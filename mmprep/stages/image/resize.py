"""``image.resize``: the img2dataset resize modes, with the interpolation picked for down- or up-scaling."""

from __future__ import annotations

from pydantic import Field

from mmprep.sample import Sample, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.image.common import decoded_images
from mmprep.stages.image.geometry import Border, Interp, ResizeMode, Side, resize


class ResizeConfig(StageConfig):
    size: int = Field(256, ge=1, description="Target side in pixels.")
    mode: ResizeMode = Field("center_crop", description="no | keep_ratio | center_crop | pad.")
    side: Side = Field("shorter", description="keep_ratio: which side becomes `size`.")
    down: Interp = Field("area", description="Interpolation when shrinking (area avoids aliasing).")
    up: Interp = Field("cubic", description="Interpolation when enlarging.")
    upscale: bool = Field(True, description="Enlarge images smaller than the target (else leave them as they are).")
    border: Border = Field("constant", description="pad: constant colour, replicate the edge (copy fill) or "
                                                   "reflect it (mirror fill).")
    color: tuple[int, int, int] = Field((0, 0, 0), description="pad with border=constant: the RGB fill colour.")


@register
class ImageResize(Stage):
    """Resize every image: keep_ratio (shorter or longer side), center_crop or pad to a square."""

    name = "image.resize"
    reads = ("image",)
    writes = ("image",)
    Config = ResizeConfig

    def process(self, sample: Sample) -> Sample:
        c = self.config
        for ext, image in decoded_images(sample, self.name):
            out = resize(image.pixels, c.size, c.mode, side=c.side, down=c.down, up=c.up, upscale=c.upscale,
                         border=c.border, color=c.color)
            if out is not image.pixels:
                sample[ext] = image.replace(out)
            info = meta(sample).setdefault("image", {}).setdefault(ext, {})
            info["resized"] = [int(out.shape[1]), int(out.shape[0])]
        return sample
