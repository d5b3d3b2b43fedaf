"""``image.face_crop``: crop the largest face found by OpenCV's bundled Haar cascade (nothing downloaded)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field

from mmprep.errors import ConfigError, Drop, MissingDependency
from mmprep.sample import Sample, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.image.common import decoded_images
from mmprep.stages.image.geometry import resize

HINT = "pip install 'opencv-python-headless<5' (OpenCV 5 wheels no longer ship CascadeClassifier or its XML files)"


def _cascade_dir() -> str | None:
    """The folder of Haar cascades shipped inside opencv-python, or None when this OpenCV has none."""
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        return None
    base = getattr(getattr(cv2, "data", None), "haarcascades", None)
    return base if base and os.path.isdir(base) else None


def cascade_path(name: str) -> str | None:
    """Path of a cascade XML shipped inside opencv-python, or None when this OpenCV has none."""
    base = _cascade_dir()
    path = os.path.join(base, name) if base else None
    return path if path and os.path.isfile(path) else None


def shipped_cascades() -> list[str]:
    """The cascade files this OpenCV ships (for the error that names a wrong one)."""
    base = _cascade_dir()
    return sorted(n for n in os.listdir(base) if n.endswith(".xml")) if base else []


class FaceCropConfig(StageConfig):
    cascade: str = Field("haarcascade_frontalface_default.xml", description="Cascade file shipped in cv2.data.")
    margin: float = Field(0.2, ge=0, description="Added around the face box, as a fraction of its side.")
    size: int | None = Field(224, ge=1, description="Resize the crop to size x size; none keeps it as cut.")
    min_face: int = Field(24, ge=8, description="Smallest face side searched, in pixels.")
    scale_factor: float = Field(1.1, gt=1, description="Cascade pyramid step.")
    min_neighbors: int = Field(5, ge=0, description="Cascade: overlapping detections needed to keep one.")
    no_face: Literal["drop", "keep"] = Field("drop", description="A sample without a face: drop it (image.no_face) "
                                                                 "or pass it through unchanged.")


@register
class ImageFaceCrop(Stage):
    """Detect faces (Haar cascade), crop the largest one with a margin, resize it to a square."""

    name = "image.face_crop"
    reads = ("image",)
    writes = ("image",)
    Config = FaceCropConfig

    def check(self) -> None:
        name = self.config.cascade
        shipped = shipped_cascades()
        if shipped and name not in shipped:  # "", the folder, a file of it that is no cascade (__init__.py)
            raise ConfigError("cascade", f"{name!r} is not a cascade OpenCV ships; one of: {', '.join(shipped)}")
        if cascade_path(name) is None:
            raise MissingDependency("cascade", f"OpenCV's Haar cascade {name}", HINT)
        self.setup()
        if self.detector.empty():  # a damaged file: CascadeClassifier loads nothing, and every shard failed
            raise ConfigError("cascade", f"OpenCV could not load the cascade {cascade_path(name)}")

    def imports(self) -> tuple[str, ...]:
        return ("cv2",)

    def setup(self) -> None:
        if getattr(self, "detector", None) is not None:  # check() loaded it (a worker runs both)
            return
        import cv2

        self.detector = cv2.CascadeClassifier(cascade_path(self.config.cascade))

    def process(self, sample: Sample) -> Sample:
        import cv2

        c = self.config
        for ext, image in decoded_images(sample, self.name):
            px = image.pixels
            grey = px if px.ndim == 2 else cv2.cvtColor(px[:, :, :3], cv2.COLOR_RGB2GRAY)
            faces = self.detector.detectMultiScale(cv2.equalizeHist(grey), scaleFactor=c.scale_factor,
                                                   minNeighbors=c.min_neighbors, minSize=(c.min_face, c.min_face))
            if len(faces) == 0:
                if c.no_face == "drop":
                    raise Drop("image.no_face", f"no face found in .{ext}", field=ext)
                meta(sample).setdefault("image", {}).setdefault(ext, {})["face"] = None
                continue
            x, y, w, h = (int(v) for v in max(faces, key=lambda f: int(f[2]) * int(f[3])))
            side = int(round(max(w, h) * (1 + 2 * c.margin)))
            cx, cy = x + w // 2, y + h // 2
            x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
            x1, y1 = min(px.shape[1], x0 + side), min(px.shape[0], y0 + side)
            crop = px[y0:y1, x0:x1]
            if c.size:
                crop = resize(crop, c.size, "center_crop")
            sample[ext] = image.replace(crop)
            meta(sample).setdefault("image", {}).setdefault(ext, {})["face"] = [x, y, w, h]
        return sample
