"""``text.decode`` and ``text.normalize``: bytes to clean ``str``, the start of every text pipeline."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mmprep.errors import Drop
from mmprep.sample import Sample, fields_of, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.text.encoding import decode_text
from mmprep.text import clean


@register
class TextDecode(Stage):
    """Decode text bytes to str (BOM, UTF-8, then the most plausible legacy encoding), recorded in metadata.

    Metadata: ``encoding[field]`` is the codec used (``utf-8``, ``utf-8-sig``, ``gb18030``, ``big5``...);
    ``controls[field]`` counts the control characters stripped. Reason codes: ``text.undecodable``,
    ``text.control`` (``on_control: drop``), ``text.too_large``.
    """

    name = "text.decode"
    version = "4"  # short Western captions not read as Big5/Shift-JIS; kana count against a Chinese reading
    reads = ("text",)
    writes = ("text",)

    class Config(StageConfig):
        encodings: list[str] | None = Field(
            None, description="Legacy encodings to try after UTF-8, in order of preference "
                              "(default gb18030, big5, cp932, euc_kr, cp949, cp1252, cp1251, latin_1).")
        @field_validator("encodings")
        @classmethod
        def _known(cls, names: list[str] | None) -> list[str] | None:
            import codecs

            for name in names or ():
                try:
                    info = codecs.lookup(name)
                except LookupError:
                    raise ValueError(f"unknown encoding {name!r}") from None
                if not getattr(info, "_is_text_encoding", True):  # base64, zlib...: bytes-to-bytes codecs
                    raise ValueError(f"{name!r} is not a text encoding")
            return names

        max_implausibility: float = Field(
            0.2, ge=0, description="Above this many implausible characters per character a legacy reading "
                                   "counts as undecodable (binary or random bytes).")
        on_undecodable: Literal["drop", "replace"] = Field(
            "drop", description="Bytes no encoding explains: drop the field (text.undecodable), or decode as "
                                "UTF-8 with U+FFFD for the bad bytes (recorded as encoding utf-8-replace).")
        on_control: Literal["strip", "drop", "keep"] = Field(
            "strip", description="NUL and other control characters (not tab/newline): strip them, drop the "
                                 "field (text.control), or keep them.")
        max_bytes: int | None = Field(16 * 2**20, ge=1, description="Larger inputs are dropped (text.too_large).")

    def process(self, sample: Sample) -> Sample:
        cfg = self.config
        candidates = tuple(cfg.encodings) if cfg.encodings else None
        for ext in fields_of(sample, "text"):
            value = sample[ext]
            if isinstance(value, bytes):
                if cfg.max_bytes and len(value) > cfg.max_bytes:
                    raise Drop("text.too_large", f"{len(value)} bytes > max_bytes {cfg.max_bytes}", field=ext)
                try:
                    value, encoding = decode_text(value, field=ext, candidates=candidates,
                                                  max_implausibility=cfg.max_implausibility)
                except Drop:
                    if cfg.on_undecodable == "drop":
                        raise
                    value, encoding = value.decode("utf-8", errors="replace"), "utf-8-replace"
                meta(sample).setdefault("encoding", {})[ext] = encoding
            if cfg.on_control != "keep":
                n = clean.count_controls(value)
                if n and cfg.on_control == "drop":
                    raise Drop("text.control", f"{n} control characters (NUL, escape...)", field=ext)
                if n:
                    value = clean.strip_controls(value)
                    meta(sample).setdefault("controls", {})[ext] = n
            sample[ext] = value
        return sample


@register
class TextNormalize(Stage):
    """Unicode normalization, width, markup/URL stripping, whitespace collapse, case, length limits.

    Order: strip HTML, strip Markdown, strip URLs/e-mails, Unicode form (NFKC by default, keeping
    full-width CJK punctuation such as ``，！？`` unless ``cjk_punctuation: halfwidth``), full-width
    letters/digits to ASCII, whitespace collapse, lowercase, length limits. Reason codes:
    ``text.not_decoded``, ``text.empty`` / ``text.too_short`` (after cleaning), ``text.too_long``
    (``on_too_long: drop``; ``truncate`` cuts and records ``truncated`` in metadata).
    """

    name = "text.normalize"
    version = "3"
    reads = ("text",)
    writes = ("text",)

    class Config(StageConfig):
        form: str = Field("NFKC", pattern="^(NFC|NFKC|NFD|NFKD|none)$", description="Unicode normalization form.")
        halfwidth: bool = Field(True, description="Full-width ASCII letters, digits, symbols and U+3000 -> ASCII.")
        cjk_punctuation: Literal["keep", "halfwidth"] = Field(
            "keep", description="Full-width CJK punctuation (，！？：；（）): keep, or turn into ASCII like NFKC does.")
        lowercase: bool = False
        strip_html: bool = Field(False, description="Remove tags/comments/scripts and unescape entities.")
        strip_markdown: bool = Field(False, description="Remove Markdown markup, keeping link and alt texts.")
        strip_urls: bool = Field(False, description="Remove URLs and e-mail addresses.")
        keep_newlines: bool = Field(False, description="Collapse spaces but keep line breaks (one per run).")
        min_chars: int = Field(1, ge=0, description="Shorter results are dropped (text.too_short / text.empty).")
        max_chars: int | None = Field(None, ge=1, description="Longer texts are cut or dropped (on_too_long).")
        on_too_long: Literal["truncate", "drop"] = "truncate"

        @model_validator(mode="after")
        def _range(self) -> TextNormalize.Config:
            if self.max_chars is not None and self.min_chars > self.max_chars:  # every text would be dropped
                raise ValueError(f"min_chars {self.min_chars} is above max_chars {self.max_chars}")
            return self

    def clean(self, text: str) -> str:
        cfg = self.config
        if cfg.strip_html:
            text = clean.strip_html(text)
        if cfg.strip_markdown:
            text = clean.strip_markdown(text)
        if cfg.strip_urls:
            text = clean.strip_urls(text)
        keep = cfg.cjk_punctuation == "keep"
        if cfg.form != "none":
            text = clean.normalize_unicode(text, cfg.form, keep_cjk_punctuation=keep)
        if cfg.halfwidth:
            text = clean.to_halfwidth(text, keep_cjk_punctuation=keep)
        text = clean.collapse_whitespace(text, keep_newlines=cfg.keep_newlines)
        if cfg.lowercase:
            text = text.lower()
        return text

    def process(self, sample: Sample) -> Sample:
        cfg = self.config
        for ext in fields_of(sample, "text"):
            text = sample[ext]
            if not isinstance(text, str):
                raise Drop("text.not_decoded", "run text.decode first", field=ext)
            text = self.clean(text)
            if cfg.max_chars and len(text) > cfg.max_chars:
                if cfg.on_too_long == "drop":
                    raise Drop("text.too_long", f"{len(text)} chars > max_chars {cfg.max_chars}", field=ext)
                text = text[: cfg.max_chars]
                meta(sample).setdefault("truncated", []).append(ext)
            if not text or _invisible(text):
                raise Drop("text.empty", "nothing left after normalization", field=ext)
            if len(text) < cfg.min_chars:
                raise Drop("text.too_short", f"{len(text)} chars < min_chars {cfg.min_chars}", field=ext)
            sample[ext] = text
        return sample


def _invisible(text: str) -> bool:
    """Only format characters (zero-width joiners, word joiners, soft hyphens: category Cf) and spaces,
    which render as nothing: a text of them is empty (stops at the first visible character)."""
    import unicodedata

    return all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in text)
