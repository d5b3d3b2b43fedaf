"""``mmprep align`` without typer: the same options, output and exit codes as the typer command, a
process that imports neither typer, pydantic, soundfile nor numpy.ma and starts one BLAS thread, and
typer for help and errors."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmprep.align.command import FLAGS, VALUE_OPTIONS, fast_main, parse_args, run_align
from mmprep.cli import load_commands
from mmprep.testing.media import srt_text, wav_bytes, write
from mmprep.testing.speech import add_noise, shifted_cues, speech_track

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    x, cues = speech_track(30, seed=5)
    wav = write(root / "a.wav", wav_bytes(add_noise(x, 12, seed=5)))
    srt = write(root / "a.srt", srt_text(shifted_cues(cues, offset_ms=-1700)))
    other = write(root / "other.srt", srt_text(shifted_cues(speech_track(30, seed=77)[1])))
    return root, wav, srt, other


def test_option_tables_match_the_typer_command():
    load_commands("align")
    from mmprep.cli.align import align

    defaults = inspect.signature(run_align).parameters
    seen = set()
    for name, p in inspect.signature(align).parameters.items():
        info = p.default
        if name in ("media", "subs"):
            continue
        for decl in info.param_decls:
            seen.add(decl)
            if p.annotation == "bool":
                assert FLAGS[decl] == name
            else:
                param, kind, lo, hi = VALUE_OPTIONS[decl]
                assert (param, kind.__name__, lo, hi) == (name, p.annotation, info.min, info.max)
        if name != "output":
            assert defaults[name].default == info.default, name
    assert seen == set(FLAGS) | set(VALUE_OPTIONS)


def test_fast_entry_prints_and_writes_what_the_typer_command_does(files, tmp_path, capsys):
    root, wav, srt, other = files
    app = load_commands("align")
    for subs, extra, code in ((srt, ["--json"], 0), (srt, ["--max-splits=0", "-q"], 0), (other, ["--json"], 1),
                              (other, ["--force", "--json", "--min-confidence", "0.9"], 1)):
        fast_out, typer_out = tmp_path / "fast.srt", tmp_path / "typer.srt"
        assert fast_main([str(wav), str(subs), "-o", str(fast_out), *extra]) == code
        fast = capsys.readouterr().out.replace(str(fast_out), "OUT")
        res = CliRunner().invoke(app, ["align", str(wav), str(subs), "--output", str(typer_out), *extra])
        assert res.exit_code == code
        assert res.output.replace(str(typer_out), "OUT") == fast
        assert fast_out.exists() == typer_out.exists() == (code == 0 or "--force" in extra)
        if fast_out.exists():
            assert fast_out.read_text() == typer_out.read_text()
            fast_out.unlink(), typer_out.unlink()
    rec = json.loads(CliRunner().invoke(app, ["align", str(wav), str(srt), "-o", str(tmp_path / "x.srt"),
                                              "--json"]).output)
    assert rec["status"] == "ok" and abs(rec["offset"] + 1.7) < 0.02


def test_fast_entry_leaves_help_and_bad_arguments_to_typer(files, tmp_path):
    _, wav, srt, _ = files
    o = str(tmp_path / "o.srt")
    for args in (["--help"], [str(wav), str(srt)], [str(wav), str(srt), "-o", o, "--max-splits", "9"],
                 [str(wav), str(srt), "-o", o, "--max-offset", "nan"], [str(wav), str(srt), "-o=" + o],
                 [str(wav), str(srt), "-o", o, "--bogus"], [str(wav), str(srt), "-o", o, "extra"],
                 [str(tmp_path / "none.wav"), str(srt), "-o", o], [str(wav), str(srt), "-o"],
                 [str(wav), str(srt), "-qo", o], [str(wav), str(srt), "-o", o, "--json=1"]):
        assert parse_args(args) is None, args
    assert parse_args([str(wav), "-q", str(srt), "--output=" + o, "--max-offset", "5", "--max-offset=7"]) == {
        "media": wav, "subs": srt, "output": Path(o), "quiet": True, "max_offset": 7.0}


def _mmprep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmprep", *args], capture_output=True, text=True, cwd=ROOT)


def test_align_process_skips_the_cli_framework(files, tmp_path):
    _, wav, srt, _ = files
    probe = ("import sys, json\n"
             f"sys.argv = ['mmprep', 'align', {str(wav)!r}, {str(srt)!r}, '-o', {str(tmp_path / 'o.srt')!r}, '-q']\n"
             "from mmprep.cli import main\n"
             "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
             "heavy = ('typer', 'click', 'pydantic', 'rich', 'soundfile', 'numpy.ma', 'torch', 'scipy')\n"
             "import os\n"
             "print(json.dumps({'code': code, 'loaded': [m for m in heavy if m in sys.modules],\n"
             "                  'blas_threads': os.environ.get('OPENBLAS_NUM_THREADS')}))\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    for preset, want in ((None, "1"), ("2", "2")):  # one BLAS thread, unless the user chose
        p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                           env=env if preset is None else {**env, "OPENBLAS_NUM_THREADS": preset})
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout.strip().splitlines()[-1]) == {"code": 0, "loaded": [], "blas_threads": want}
    assert (tmp_path / "o.srt").exists()
    usage = _mmprep("align", "--help")
    assert usage.returncode == 0 and "--max-offset" in usage.stdout
    bad = _mmprep("align", str(wav), str(srt), "-o", str(tmp_path / "b.srt"), "--max-splits", "9")
    assert bad.returncode == 2 and "max-splits" in bad.stderr and not (tmp_path / "b.srt").exists()
    missing = _mmprep("align", str(tmp_path / "none.wav"), str(srt), "-o", str(tmp_path / "b.srt"))
    assert missing.returncode == 2 and "MEDIA" in missing.stderr
