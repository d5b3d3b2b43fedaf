"""Text test data made in code: sentences in Chinese, English and both, in several encodings, plus bad files."""

from __future__ import annotations

from pathlib import Path

from mmprep.testing.media import write

ZH = ["我们今天去北京大学参加了一个关于自然语言处理的学术会议。",
      "小明硕士毕业于中国科学院计算所，后在日本京都大学深造。",
      "他来到了网易杭研大厦，觉得这里的风景很美。", "一只猫坐在窗台上看着外面的雨。", "结婚的和尚未结婚的都来了。"]
ZH_TW = "我們今天去臺灣大學參加了一個關於自然語言處理的學術會議，會上討論了中文分詞和詞性標注的最新進展。"
EN = ["The quick brown fox jumps over the lazy dog.", "Don't stop me now, Mr. Smith's U.S. car isn't ready!",
      "Natural language processing turns raw text into training data.", "Waves at sunset, and the city lights."]
MIXED = ["我用Python写代码，and it runs fast 😀", "城市夜景 and neon lights 在晚上很漂亮。"]
JA = "今日は東京大学で自然言語処理についての会議に参加しました。とても面白かったです。"
KO = "오늘은 서울대학교에서 자연어 처리에 관한 학술 회의에 참석했습니다. 정말 재미있었습니다."
LATIN1 = "Le café est très bon. Naïve façade, déjà vu à Zürich, größer, señor."

# name -> (bytes, the text they must decode to)
ENCODED: dict[str, tuple[bytes, str]] = {
    "gbk": (ZH[0].encode("gbk"), ZH[0]),
    "gb18030": ((ZH[1] + "𠀀").encode("gb18030"), ZH[1] + "𠀀"),  # U+20000 exists only in GB18030
    "big5": (ZH_TW.encode("big5"), ZH_TW),
    "latin1": (LATIN1.encode("latin-1"), LATIN1),
    "shift_jis": (JA.encode("shift_jis"), JA),
    "euc_kr": (KO.encode("euc_kr"), KO),
    "utf8bom": (b"\xef\xbb\xbf" + MIXED[0].encode("utf-8"), MIXED[0]),
    "gbk_short": ("你好".encode("gbk"), "你好"),
    "latin1_short": ("café".encode("latin-1"), "café"),
}


def texts(n: int, *, seed: int = 0) -> list[str]:
    """``n`` texts cycling through Chinese, English and mixed sentences (deterministic)."""
    pool = ZH + EN + MIXED
    out = []
    for i in range(n):
        a, b = pool[(i + seed) % len(pool)], pool[(3 * i + seed + 1) % len(pool)]
        out.append(f"{a} {b} #{i}")
    return out


def text_corpus(root: Path, n: int = 12, *, bad: bool = False) -> dict[str, str]:
    """``root/tNNNN.txt`` files (UTF-8); with ``bad`` also the bad inputs. Returns stem -> expected reason."""
    for i, text in enumerate(texts(n)):
        write(root / f"t{i:04d}.txt", text)
    reasons: dict[str, str] = {}
    if bad:
        write(root / "bad_gbk.txt", ENCODED["gbk"][0])  # decodes fine: no reason
        write(root / "bad_nul.txt", b"hello\x00world\x00 \x1b[31mred\x1b[0m")  # stripped by default
        write(root / "bad_empty.txt", b"")
        reasons["bad_empty"] = "input.empty"
        write(root / "bad_random.txt", bytes((i * 7919 + 13) % 256 for i in range(4096)))
        reasons["bad_random"] = "text.undecodable"
        write(root / "bad_spaces.txt", "   \n\t  ")
        reasons["bad_spaces"] = "text.empty"
    return reasons


def run_stages(stages: list, sample: dict) -> dict:
    """Run ``stages`` in order over one sample (raises the first Drop)."""
    for stage in stages:
        if stage.applies(sample):
            sample = stage.process(sample)
    return sample
