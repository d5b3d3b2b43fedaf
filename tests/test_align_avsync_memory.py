"""A/V sync reads a long video's frames as small uint8 luma images, not float copies of them all."""

from __future__ import annotations

import tracemalloc

import numpy as np

from mmprep.align.avsync import read_video
from mmprep.testing.media import encode_video


def test_frame_changes_of_a_long_video_take_little_memory():
    n = 3000  # 100 s at 30 fps
    frames = [np.full((36, 64, 3), 255 if i % 90 == 0 else 16, np.uint8) for i in range(n)]
    data = encode_video(frames, fps=30, container="mp4")
    tracemalloc.start()
    try:
        sig = read_video(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(sig.frame_times) == n
    assert np.flatnonzero(sig.change > 100).tolist()[:4] == [1, 90, 91, 180]  # flashes at 0, 90...: on, off
    # the frames alone are 6.9 MB as uint8; as float32 they were 27.6 MB, stacked and diffed: ~110 MB
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.1f} MiB"
