"""Every command and code block in the README and in the documentation site (docs/) runs, as written.

The commands run in order in a scratch directory, with three things made small so the whole
README takes seconds: the packaged text encoder is the tiny test BERT, every training runs one
epoch on its first seed, and the files the pages say the user holds (the MMSA pickles in
~/MMSA, a raw MOSI release in ~/MOSI, a directory of transcripts, the user's clips) are small
generated files of the same kind. Everything else a page uses it makes itself (``msakit synth``,
``msakit synth DIR --clips N``, shrunk here to 24 clips), so the tour and the tutorial run from
a fresh clone. A command the test does not know fails it, so a new README command comes with
its way to run here.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def nav_pages() -> list[Path]:
    """The pages of the documentation site, in the order of its navigation (mkdocs.yml)."""
    nav = re.findall(r":\s*([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    return [ROOT / "docs" / page for page in nav]


PAGES = [README, *nav_pages()]
SKIPPED_PREFIXES = ("make ", "pip ", "python -m pytest", ".venv/bin/python")


def readme_blocks(language: str, path: Path = README) -> list[str]:
    """The README's (or another page's) fenced code blocks of one language ("" for unlabelled ones)."""
    blocks, current, open_language = [], [], None
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            if open_language is None:
                open_language, current = line[3:].strip(), []
            else:
                if open_language == language:
                    blocks.append("\n".join(current) + "\n")
                open_language = None
        elif open_language is not None:
            current.append(line)
    return blocks


def readme_commands(path: Path = README) -> list[str]:
    """Every ``msakit`` command line in the README's shell blocks (``bash`` or unlabelled)."""
    commands = []
    for block in readme_blocks("bash", path) + readme_blocks("", path):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(".venv/bin/msakit "):
                line = line[len(".venv/bin/"):]
            if line.startswith("msakit ") and not re.match(r"msakit \w+: ", line):  # not a printed message
                commands.append(line)
    return commands


def readme_error_examples() -> list[tuple[str, str]]:
    """``$ msakit ...`` lines of the README with the message printed below each."""
    examples = []
    for block in (b for page in PAGES for b in readme_blocks("", page)):
        lines = block.splitlines()
        for command, printed in zip(lines, lines[1:] + [""]):
            if command.startswith("$ msakit "):
                examples.append((command[2:], printed))
    return examples


@pytest.fixture(scope="session")
def mosi_raw_release(tmp_path_factory) -> Path | None:
    """A raw CMU-MOSI-like release (label.csv beside Raw/<video_id>/<clip_id>.mp4, splits in its
    mode column) of 12 short clips: the tutorial's "~/MOSI"."""
    if not VIDEO:
        return None
    from msakit.extract.media import voice, write_clip

    root = tmp_path_factory.mktemp("MOSI_raw")
    rows = ["video_id,clip_id,text,label,annotation,mode"]
    for v, mode in enumerate(["train"] * 4 + ["valid", "test"]):
        for c in (1, 2):
            label = 2.0 if (v + c) % 2 else -2.0
            write_clip(root / "Raw" / f"vid{v}" / f"{c}.mp4", seconds=0.8, size=(160, 120), audio=voice(0.8, seed=v * 2 + c),
                       scale=lambda t, label=label: 0.8 if label > 0 else 0.6)
            rows.append(f"vid{v},{c},{'a good film' if label > 0 else 'a bad film'},{label},{'Positive' if label > 0 else 'Negative'},{mode}")
    (root / "label.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def readme_world(tmp_path, monkeypatch, tiny_bert_dir, small_synthetic, mosi_raw_release):
    """Scratch cwd; the README's external files made small; one epoch, one seed, tiny encoder."""
    import msakit.api
    import msakit.cli
    import msakit.training.runs
    import msakit.config
    import msakit.data
    import msakit.encoders.text
    from msakit.data.mmsa import write_mmsa_pickle
    from msakit.data.safe_pickle import safe_load

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(msakit.encoders.text, "default_text_encoder_path", lambda: tiny_bert_dir)
    monkeypatch.setattr(msakit.data, "synthetic_path", lambda: small_synthetic)
    resolve = msakit.config.resolve_config

    def short(model, **kwargs):
        overrides = {k: dict(v) for k, v in (kwargs.pop("overrides", None) or {}).items()}
        asked = overrides.setdefault("train", {}).get("max_epochs")
        if asked is None or str(asked).lstrip("-").isdigit() and int(asked) >= 1:  # an invalid value stays, to be refused
            overrides["train"]["max_epochs"] = 1
        overrides["train"]["progress"] = False
        return resolve(model, overrides=overrides, **kwargs)

    monkeypatch.setattr(msakit.training.runs, "resolve_config", short)
    monkeypatch.setattr(msakit.config, "resolve_config", short)  # modules that import it lazily
    check_seeds = msakit.training.runs.check_seeds
    monkeypatch.setattr(msakit.training.runs, "check_seeds", lambda seeds: check_seeds(seeds)[:1])
    run = msakit.cli._run

    def first_seed_only(args, command_line):
        if getattr(args, "seeds", None):
            args.seeds = args.seeds[:1]
        return run(args, command_line)

    monkeypatch.setattr(msakit.cli, "_run", first_seed_only)

    data = safe_load(small_synthetic)
    files = {}
    mmsa = tmp_path / "MMSA"
    files["~/MMSA/MOSI/unaligned_50.pkl"] = small_synthetic
    from msakit.data.synthetic import SyntheticSpec, write_synthetic

    files["~/MMSA/MOSI/aligned_50.pkl"] = write_synthetic(
        mmsa / "MOSI" / "aligned_50.pkl", SyntheticSpec(n_train=48, n_valid=16, n_test=16, seed=3, aligned=True))
    files["/path/to/bert-base-uncased"] = tiny_bert_dir
    if mosi_raw_release is not None:
        files["~/MOSI"] = mosi_raw_release
    sims = {name: dict(split) for name, split in data.items()}
    for split in sims.values():
        for key in [k for k in split if k.startswith("regression_labels")]:
            split[key] = np.clip(split[key] / 3.0, -1, 1).astype(np.float32)
    files["~/MMSA/SIMS/unaligned_39.pkl"] = write_mmsa_pickle(mmsa / "SIMS" / "unaligned_39.pkl", sims)
    clips = {k: v for k, v in data["test"].items() if not k.startswith("regression_labels")}
    files["my_clips.pkl"] = write_mmsa_pickle(tmp_path / "my_clips.pkl", {"test": clips})
    table = tmp_path / "mosi_text"
    table.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 32), ("dev", 12)):
        rows = [f"{'a good film' if y > 0 else 'a bad film'} {i}\t{y:.2f}" for i, y in enumerate(rng.uniform(-3, 3, n))]
        (table / f"{split}.tsv").write_text("text\tlabel\n" + "\n".join(rows) + "\n")
    files["my_transcripts"] = table  # a directory of text,label tables the user holds (docs/guide/train.md)
    videos = tmp_path / "mosi_ctx"  # transcripts with video_id/clip_id (docs/guide/train.md, data.context)
    videos.mkdir()
    for split, n in (("train", 8), ("dev", 3)):
        rows = [f"{split}v{v}\t{c}\t{'a good film' if v % 2 else 'a bad film'} {c}\t{(1.5 if v % 2 else -1.5):.2f}" for v in range(n) for c in (1, 2, 3)]
        (videos / f"{split}.tsv").write_text("video_id\tclip_id\ttext\tlabel\n" + "\n".join(rows) + "\n")
    files["mosi_ctx"] = videos
    # docs/data.md: tiny.pkl, written by the page's own Python block (its commands and refusals read it); its refusals' inputs:
    # a pickle holding a torch tensor, a table directory whose header lacks text/label, a CSV table with an unquoted comma,
    # an existing folder given as a predictions file
    import pickle

    import torch

    exec(compile(next(b for b in readme_blocks("python", ROOT / "docs" / "data.md") if '"tiny.pkl"' in b), "docs/data.md", "exec"),
         {"__name__": "docs_data"})
    with open(tmp_path / "features_torch.pkl", "wb") as file:
        pickle.dump({"train": {"id": ["v1$_$1"], "audio": torch.zeros(1, 8, 5)}}, file)
    for name, lines in (("reviews", ("sentence\tscore", "a great film\t2.4", "pretty dull\t-1.2")),
                        ("reviews_csv", ("text,label", "a great film,2.4", "a bad film, really,-2.0"))):
        (tmp_path / name).mkdir()
        for split in ("train", "dev"):
            (tmp_path / name / f"{split}.{'tsv' if name == 'reviews' else 'csv'}").write_text("\n".join(lines) + "\n")
    (tmp_path / "predictions").mkdir()
    if VIDEO:  # "From video to a sentiment score": a labelled manifest of 14 short clips, two new videos
        import csv

        from msakit.extract.media import voice, write_clip

        rows = []
        for i in range(14):
            label = 2.0 if i % 2 else -2.0
            write_clip(tmp_path / "your_clips" / f"c{i}.mp4", seconds=0.8, size=(160, 120), audio=voice(0.8, seed=i),
                       scale=lambda t, label=label: 0.8 if label > 0 else 0.6)
            rows.append({"path": f"c{i}.mp4", "label": label, "text": "a good film" if label > 0 else "a bad film", "video_id": f"v{i}"})
        with open(tmp_path / "your_clips" / "manifest.csv", "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        for name in ("new1.mp4", "new2.mp4"):
            write_clip(tmp_path / name, seconds=0.8, size=(160, 120), audio=voice(0.8))
        # docs/errors.md's extract refusals: an audio file; a CH-SIMS release with a label_A out of range; a MOSI release
        # whose label.csv leaves a quote open on line 2; a MOSEI folder with label.csv and no Raw/
        import soundfile

        soundfile.write(tmp_path / "talk.wav", voice(1.0), 16000)
        (tmp_path / "SIMS" / "Raw" / "video_0001").mkdir(parents=True)
        soundfile.write(tmp_path / "SIMS" / "Raw" / "video_0001" / "0001.wav", voice(1.0), 16000)
        (tmp_path / "SIMS" / "label.csv").write_text("video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode\n"
                                                     "video_0001,0001,好,0.4,0.2,3,0.6,Positive,train\n")
        (tmp_path / "MOSI" / "Raw").mkdir(parents=True)
        (tmp_path / "MOSI" / "label.csv").write_text('video_id,clip_id,text,label,annotation,mode\nv1,0001,"it never closes,0.5,Positive,train\n'
                                                     "v1,0002,fine,0.1,Positive,train\n")
        (tmp_path / "MOSEI").mkdir()
        (tmp_path / "MOSEI" / "label.csv").write_text("video_id,clip_id,text,label,annotation,mode\nv1,0001,fine,0.5,Positive,train\n")
        # docs/data.md's manifest refusal: a transcript with an unquoted comma
        (tmp_path / "clips.csv").write_text("path,label,text\nv1_1.mp4,2.0,a good film\nv1_2.mp4,-2.0,a bad film, really\n")
    return files


def localise(command: str, files: dict) -> list[str]:
    import torch

    for written, local in files.items():
        command = command.replace(written, shlex.quote(str(local)))
    if not torch.cuda.is_available():
        command = command.replace("--device cuda", "--device cpu")
    argv = shlex.split(command)
    assert argv[0] == "msakit", command
    return argv[1:]


KNOWN = {"train", "evaluate", "predict", "synth", "ablate", "compare", "sweep", "extract", "robustness", "serve"}
VIDEO = all(importlib.util.find_spec(m) is not None for m in ("av", "librosa", "mediapipe", "moonshine_voice", "skimage"))
SERVE = all(importlib.util.find_spec(m) is not None for m in ("fastapi", "uvicorn", "multipart"))


def curl_commands(path: Path) -> list[str]:
    """The ``curl`` lines of a page's shell blocks: run against the server its ``msakit serve`` starts."""
    return [line.strip() for block in readme_blocks("bash", path) for line in block.replace("\\\n", " ").splitlines()
            if line.strip().startswith("curl ")]


def serve_then_stop(argv: list[str], files: dict, curls: list[str], monkeypatch) -> int:
    """Run ``msakit serve`` as written, on a free port: once it is up, the page's curl commands
    (else a health check) run against it, then it stops."""
    import json
    import subprocess
    import urllib.request

    import msakit.workflows.serve as serving
    from msakit.cli import main

    real, answers = serving.serve, []

    def ready(url: str) -> bool:
        if not curls:
            answers.append(json.loads(urllib.request.urlopen(url + "api/health", timeout=30).read()))
        for command in curls:
            for written, local in files.items():
                command = command.replace(written, str(local))
            command = re.sub(r"http://127\.0\.0\.1:\d+/", url, command)
            done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{command}: {done.stderr}"
            answers.append(json.loads(done.stdout))
        return True

    monkeypatch.setattr(serving, "serve", lambda *args, **kwargs: real(*args, **{**kwargs, "port": 0}, ready=ready))
    code = main(argv)
    for answer in answers:
        assert "detail" not in answer and ("predictions" in answer or "status" in answer or "model" in answer), answer
        assert not answer.get("failures"), answer
    assert len(answers) == max(1, len(curls))
    return code


def run_commands(commands: list[str], world: dict, capsys, monkeypatch, curls: list[str] = ()) -> None:
    from msakit.cli import main

    skipped: set[str] = set()  # outputs of commands skipped for a missing extra: what reads them is skipped too
    for command in commands:
        if "postgresql://" in command:
            # The many-machines command: run against the real server CI starts, else skipped.
            url = os.environ.get("MSAKIT_TEST_POSTGRES_URL")
            if not url:
                continue
            command = re.sub(r"postgresql://\S+", url, command).replace("/data/mosei.pkl", "synthetic")
            command = command.replace("--study dma-mosei", f"--study readme-{os.getpid()}-{time.time_ns()}")
        command = re.sub(r"--n-trials \d+", "--n-trials 2", command)
        command = re.sub(r"--clips \d+", "--clips 24", command)  # the tutorial's clip set, smaller
        argv = localise(command, world)
        assert argv[0] in KNOWN, f"README command {command!r} has no way to run in this test: add it"
        needs_video = (argv[0] in ("extract", "serve") or "--video" in argv or "--clips" in argv
                       or any(a.startswith("feats") and a.endswith(".pkl") for a in argv) or any(a in skipped for a in argv))
        if not VIDEO and needs_video:
            for option in ("--output", "-o", "--run-dir"):
                if option in argv:
                    skipped.add(argv[argv.index(option) + 1])
            continue  # needs the optional extra msakit[video]
        if argv[0] in ("robustness", "evaluate") and not Path(argv[1]).exists():
            # A command on "a trained run": the README's own `msakit train --model self_mm --run-dir runs/x`.
            assert main(["train", "--model", "self_mm", "--run-dir", argv[1]]) == 0, command
        if "--resume" in argv and not Path(argv[argv.index("--run-dir") + 1]).exists():
            # "continue a killed run": make the run it continues, with the same arguments.
            assert main([a for a in argv if a != "--resume"]) == 0, command
        if argv[0] == "serve":
            if not SERVE:
                continue  # needs the optional extra msakit[serve]
            code = serve_then_stop(argv, world, list(curls), monkeypatch)
        else:
            code = main(argv)
        captured = capsys.readouterr()
        assert code == 0, f"{command}\n{captured.err}"


def test_every_readme_command_runs_as_written(readme_world, capsys, monkeypatch):
    commands = readme_commands()
    assert len(commands) >= 4, "the README's commands were not found"
    run_commands(commands, readme_world, capsys, monkeypatch)


DOCS_WITH_COMMANDS = [p for p in nav_pages() if readme_commands(p)]


def test_the_docs_site_has_pages_with_commands():
    assert len(DOCS_WITH_COMMANDS) >= 5 and all(p.is_file() for p in nav_pages())


@pytest.mark.parametrize("page", DOCS_WITH_COMMANDS, ids=[p.name for p in DOCS_WITH_COMMANDS])
def test_every_docs_command_runs_as_written(page, readme_world, capsys, monkeypatch):
    commands = readme_commands(page)
    run_commands(commands, readme_world, capsys, monkeypatch, curls=curl_commands(page))


def test_every_readme_error_example_prints_what_the_readme_shows(readme_world, capsys):
    from msakit.cli import main

    examples = readme_error_examples()
    assert examples, "the README's error examples were not found"
    for command, printed in examples:
        if command.startswith("msakit extract") and not VIDEO:
            continue  # refused for the missing extra before its input is read
        code = main(localise(command, readme_world))
        assert code == 2 and capsys.readouterr().err.strip() == printed, command


def test_every_readme_python_block_runs(readme_world, capsys):
    blocks = [b for page in PAGES for b in readme_blocks("python", page)]
    assert blocks, "the README's and docs' Python blocks were not found"
    for block in blocks:
        code = block.replace('"my_clips.pkl"', repr(str(readme_world["my_clips.pkl"])))
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
