"""Write the small demo corpus to examples/corpus (about 0.3 MB): made in code, nothing downloaded.

Each sample is an image + a caption + an audio clip with its subtitles; every fourth has a short mp4.
Two broken inputs show how bad files are reported instead of crashing the build.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from mmprep.testing.corpus import multimodal_corpus
from mmprep.testing.media import write


def main(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
    multimodal_corpus(root, 12)
    write(root / "broken" / "cat.jpg", b"\xff\xd8\xff\xe0 truncated jpeg")
    write(root / "broken" / "cat.txt", "a cat whose photo is broken")
    write(root / "broken" / "nocaption.jpg", (root / "part0" / "item0000.jpg").read_bytes())
    files = [p for p in root.rglob("*") if p.is_file()]
    print(f"wrote {len(files)} files, {sum(p.stat().st_size for p in files) / 1e6:.2f} MB to {root}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", type=Path, default=Path(__file__).resolve().parent / "corpus",
                    help="folder to write (replaced if it exists; default examples/corpus)")
    main(ap.parse_args().root)
