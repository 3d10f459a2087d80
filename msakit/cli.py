"""Command line: ``msakit train | evaluate | predict | compare | sweep | robustness | extract | serve | synth``, each over a library function."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from msakit.errors import ConfigError


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds: expected comma-separated integers, got {text!r}") from None


def _model_data(items: list[str] | None) -> dict[str, str]:
    pairs = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"--model-data: expected MODEL=PATH, got {item!r}")
        pairs[name.strip()] = path.strip()
    return pairs


def _floats(text: str, option: str) -> list[float]:
    from msakit.errors import ConfigError

    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{option}: expected comma-separated numbers, got {text!r}") from None


class _ModelNames:
    """The registered model names, looked up (importing the models, and with them torch) only
    when argparse checks a ``--model`` value or prints a help: commands that train nothing
    (``msakit extract``) start without torch's 2 s import."""

    def _names(self) -> list[str]:
        from msakit.models import available_models

        return available_models()

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self):
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


def available_models() -> _ModelNames:
    return _ModelNames()


class _Parser(argparse.ArgumentParser):
    """A mistake on the command line is one line, like every other error (exit 2), pointing at
    ``--help`` instead of printing the whole usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see: {self.prog} --help)\n")


def _shown(text: str) -> str:
    """``text`` for a terminal: control characters escaped (a file name or transcript may hold them)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="msakit", description="Multimodal sentiment analysis: train, evaluate, predict.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error")

    p = sub.add_parser("train", parents=[common], help="train a model, one run per seed, and print test metrics")
    p.add_argument("--model", default="dma", choices=available_models(), metavar="MODEL", help="one of %(choices)s (default %(default)s)")
    p.add_argument("--data", default="synthetic", help="MMSA feature pickle, a directory of text,label tables, or 'synthetic' (default)")
    p.add_argument("--kind", default="mosi", choices=["mosi", "mosei", "sims"], help="dataset kind: label range, metrics and defaults")
    p.add_argument("--seeds", type=_seeds, default=[1111], help="comma-separated, e.g. 1111,1112,1113")
    p.add_argument("--modalities", help="subset of t,a,v to use, e.g. t or t,a (default: all the data has)")
    p.add_argument("--run-dir", help="where to write the run (default runs/<model>_<data>_<time>)")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--epochs", type=int, help="maximum epochs (train.max_epochs)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value, e.g. model.post_text_dim=64 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last finished epoch")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--compare-text-only", action="store_true", help="also train the same model on text alone (in RUN_DIR/text_only) and print both side by side")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train one run over N processes on this machine (one per GPU, or gloo on CPU): launches this command "
                        "with torchrun (torch.distributed.run --standalone); see docs/guide/distributed.md for several machines")

    p = sub.add_parser("evaluate", parents=[common], help="metrics of a trained run on a data file")
    p.add_argument("run_dir")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--kind", choices=["mosi", "mosei", "sims"], help="default: the kind the run was trained on")
    p.add_argument("--split", default="test")
    p.add_argument("--device", default="auto")

    p = sub.add_parser("predict", parents=[common], help="write a CSV of a trained run's predictions on a feature pickle (or on video files)")
    p.add_argument("run_dir")
    p.add_argument("--data", help="feature pickle to predict on")
    p.add_argument("--video", nargs="+", metavar="VIDEO", help="video files: extract with the run's extractor settings, then predict")
    p.add_argument("--workers", type=int, help="with --video: clips extracted in parallel (default 1; with --engine ray: every CPU of the cluster)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="with --video: extract on this machine (default) or on a Ray cluster (needs msakit[distributed])")
    p.add_argument("--address", help="with --engine ray: the Ray cluster to join (HOST:6379, ray://HOST:10001 or auto; default: a local one)")
    p.add_argument("--transcript", action="append", metavar="TEXT",
                   help="with --video: a clip's transcript instead of speech recognition; once per video, in order ('' to recognise)")
    p.add_argument("--video-id", action="append", metavar="ID",
                   help="with --video: the video a clip was cut from, once per video, in order; a run trained with data.context reads "
                        "the clips of one video as each other's neighbours")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (inputs are never written over)")
    p.add_argument("--output", required=True, help="CSV file to write (with --video also a .json beside it); never one of the inputs")
    p.add_argument("--kind", choices=["mosi", "mosei", "sims"])
    p.add_argument("--split", default="test")
    p.add_argument("--device", default="auto")

    p = sub.add_parser("ablate", parents=[common], help="train a model with several alignment pair sets (and without ULGM); write a table and a plot")
    p.add_argument("--model", default="dma", choices=available_models(), metavar="MODEL", help="one of %(choices)s (default %(default)s)")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--kind", default="mosi", choices=["mosi", "mosei", "sims"])
    p.add_argument("--seeds", type=_seeds, default=[1111, 1112, 1113])
    p.add_argument("--pair-sets", default="none;a-v;t-a;t-v;all", help="';'-separated pair sets (a set may hold commas: 't-a,t-v')")
    p.add_argument("--no-ulgm-for", default="none;a-v", help="';'-separated pair sets also trained without ULGM ('' for none)")
    p.add_argument("--align-dim", type=int, default=32)
    p.add_argument("--output", required=True, help="directory for ablation.json/.md/.png (and the runs, unless --runs-dir)")
    p.add_argument("--runs-dir", help="where the variants' runs go; finished seeds there are reused")
    p.add_argument("--epochs", type=int)
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")

    p = sub.add_parser("compare", parents=[common], help="train several models over the same seeds; write a table (markdown, JSON) and a figure")
    p.add_argument("--models", required=True, help="comma-separated, e.g. self_mm,dma,tfn,lmf,mult")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--kind", default="mosi", choices=["mosi", "mosei", "sims"])
    p.add_argument("--seeds", type=_seeds, default=[1111, 1112, 1113])
    p.add_argument("--output", required=True, help="directory for compare.json/.md/.png (and the runs, unless --runs-dir)")
    p.add_argument("--runs-dir", help="where the runs go; finished seeds there are reused")
    p.add_argument("--epochs", type=int, help="maximum epochs of every run (train.max_epochs)")
    p.add_argument("--text-only", action="store_true", help="also train each model on the text alone (a row per model)")
    p.add_argument("--model-data", action="append", metavar="MODEL=PATH",
                   help="train MODEL on another file of the same samples, e.g. mag_bert=aligned.pkl (MAG-BERT needs word-aligned data)")
    p.add_argument("--set", action="append", metavar="[MODEL:]SECTION.KEY=VALUE",
                   help="override a setting for every model, or for one model with a MODEL: prefix (e.g. tfn:model.post_fusion_dim=32)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: each model and seed a task on a Ray cluster (the runs directory must be shared by its machines)")
    p.add_argument("--address", help="with --engine ray: the Ray cluster to join (HOST:6379, ray://HOST:10001 or auto; default: a local one)")

    p = sub.add_parser("sweep", parents=[common], help="search settings with Optuna on validation MAE; retrain the best over seeds; table + figures")
    p.add_argument("--model", default="dma", choices=available_models(), metavar="MODEL", help="one of %(choices)s (default %(default)s)")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--kind", default="mosi", choices=["mosi", "mosei", "sims"])
    p.add_argument("--space", help="search space TOML file (default: the model's default space, see msakit/workflows/sweep.py)")
    p.add_argument("--n-trials", type=int, default=20, help="trials in the whole study, shared by all its workers")
    p.add_argument("--output", required=True, help="directory for the trials' runs, study.db, trials.csv/.md, figures, sweep.json")
    p.add_argument("--storage", help="SQLAlchemy URL of the study database, e.g. postgresql://user:pass@host/db (default: sqlite in --output)")
    p.add_argument("--study", help="study name (default <model>-<data>); workers with the same --storage and --study share it")
    p.add_argument("--seeds", type=_seeds, default=[1111, 1112, 1113, 1114, 1115], help="seeds of the final retraining")
    p.add_argument("--no-final", action="store_true", help="only run trials (extra workers); no final retraining")
    p.add_argument("--final-only", action="store_true", help="no new trials: retrain the study's best settings and write the report")
    p.add_argument("--sampler-seed", type=int, help="seed of the TPE sampler")
    p.add_argument("--prune-after", type=int, default=3, help="epochs a trial always runs before the median pruner may stop it")
    p.add_argument("--heartbeat", type=int, default=30, help="seconds between a running trial's heartbeats; a trial silent for 4x this is failed and retried")
    p.add_argument("--epochs", type=int)
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE")

    p = sub.add_parser("extract", parents=[common], help="extract features of video/audio clips into an MMSA feature pickle (needs msakit[video])")
    p.add_argument("source", help="a folder of clips, a raw dataset release (label.csv + Raw/), a manifest CSV "
                                  "(path[,label][,split][,text][,video_id][,id]) or one media file")
    p.add_argument("--output", "-o", required=True, help="feature pickle to write; its .extractor.json sidecar goes beside it")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output pickle and sidecar (inputs are never written)")
    p.add_argument("--layout", choices=["auto", "mmsa", "files"], default="auto", help="mmsa: a raw release (label.csv beside Raw/<video_id>/<clip_id>.mp4); auto: detect it")
    p.add_argument("--kind", choices=["mosi", "mosei", "sims"], help="dataset kind (label range); default: from the labels' range")
    p.add_argument("--channel", choices=["mix", "left", "right"], help="audio channel to use (default: mix, the mono downmix)")
    p.add_argument("--verbose", action="store_true", help="let third-party libraries' log lines through (MediaPipe, TensorFlow Lite, ONNX Runtime)")
    p.add_argument("--workers", type=int, default=None,
                   help="clips extracted in parallel, one process each (default: half the cores: each extraction uses 2, audio and video at once)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this machine's processes (default); ray: a Ray cluster, one worker per CPU unless --workers (needs msakit[distributed])")
    p.add_argument("--address", help="with --engine ray: the Ray cluster to join (HOST:6379, ray://HOST:10001 or auto; default: a local one)")
    p.add_argument("--split-fractions", help="train,valid,test fractions, assigned by video id (default: the manifest's split column, else all clips in test)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split assignment")
    p.add_argument("--modalities", help="subset of t,a,v to extract (default: all)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="extractor setting, e.g. video_fps=5 (repeatable)")
    p.add_argument("--config", metavar="FILE", help="TOML or JSON file of extractor settings ([extract] table: feature sets, "
                                                    "model directories, layers, ...); --set and the options below override it")
    p.add_argument("--audio-features", metavar="SET[:DIR]", help="descriptors (default), egemaps_lld, egemaps_functionals, compare_lld, "
                                                                 "compare_functionals, waveform (the 16 kHz signal itself, for mmml), or speech_encoder:DIR (a local wav2vec 2.0 / HuBERT / WavLM / data2vec-audio directory)")
    p.add_argument("--vision-features", metavar="SET[:DIR]", help="facemesh (default) or image_encoder:DIR (a local ViT / DINOv2 / CLIP directory, on the aligned face crop)")
    p.add_argument("--text-features", metavar="SET[:DIR]", help="none (default: the transcript only) or text_encoder:DIR (hidden states of a local BERT / RoBERTa / XLNet directory)")
    p.add_argument("--quiet", action="store_true", help="no progress bar; clips listed but missing on disk and files listed nowhere "
                                                         "are counted in one line (their paths are in the sidecar)")

    p = sub.add_parser("robustness", parents=[common], help="evaluate a trained run with modalities missing or corrupted; write a table and a figure")
    p.add_argument("run_dir")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--kind", choices=["mosi", "mosei", "sims"], help="default: the kind the run was trained on")
    p.add_argument("--split", default="test")
    p.add_argument("--device", default="auto")
    p.add_argument("--rates", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1", help="rates of the missing / frame-drop / word-error curves")
    p.add_argument("--missing", default="each,all", help="'each' (a curve per modality), 'all' (every modality, each independently), sets like t+a, or 'none'")
    p.add_argument("--frame-drop", default="", help="modalities whose frames are zeroed at each rate, e.g. a,v")
    p.add_argument("--noise", default="", help="modalities given Gaussian noise at each --snr, e.g. a,v")
    p.add_argument("--snr", default="20,10,5,0,-5,-10", help="signal-to-noise ratios in dB for --noise (write --snr=-5,0 when the first is negative)")
    p.add_argument("--word-errors", default="", help="transcript word errors at each rate: drop, replace, or drop,replace")
    p.add_argument("--incomplete", action="store_true",
                   help="one curve where every modality loses words or frames at the same rate (LNLN's evaluation of incomplete data)")
    p.add_argument("--seed", type=int, default=0, help="corruption seed (the same for every model seed)")
    p.add_argument("--output", help="directory for robustness.json/.md/.png (default RUN_DIR/robustness)")

    # ---- serve (msakit/workflows/serve; needs msakit[serve] and msakit[video]) ----
    p = sub.add_parser("serve", parents=[common], help="a page and an HTTP API scoring clips with a trained run (needs msakit[serve])")
    p.add_argument("run_dir")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs --token)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--token", help="bearer token the page and API ask for (default: $MSAKIT_SERVE_TOKEN, else none)")
    p.add_argument("--max-mb", type=float, default=50.0, help="largest upload per request, in MB (413 beyond it)")
    p.add_argument("--workers", type=int, default=1, help="extraction processes")
    p.add_argument("--queue", type=int, default=8, help="clips that may wait for a worker (503 with Retry-After beyond)")
    p.add_argument("--max-clips", type=int, default=16, help="clips per request")
    p.add_argument("--device", default="cpu", help="where the model runs: cpu (default), auto, cuda")
    p.add_argument("--kind", choices=["mosi", "mosei", "sims"], help="default: the kind the run was trained on")

    p = sub.add_parser("synth", parents=[common], help="write the synthetic dataset as an MMSA feature pickle, or (--clips N) a tiny labelled clip set")
    p.add_argument("output", help="the pickle to write, or with --clips the folder of clips (an existing file is kept unless --overwrite)")
    p.add_argument("--clips", type=int, metavar="N", help="write N short labelled video clips and their manifest.csv into OUTPUT (a folder) "
                                                          "for msakit extract (needs msakit[video])")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-train", type=int, help="training samples (default: 600)")
    p.add_argument("--n-valid", type=int, help="validation samples (default: 150; --utterance 200)")
    p.add_argument("--n-test", type=int, help="test samples (default: 300; --utterance 700)")
    p.add_argument("--aligned", action="store_true", help="word-aligned layout like aligned_50.pkl (one frame per token, no *_lengths)")
    p.add_argument("--raw-scale", action="store_true", help="audio/vision in raw extractor units (per-column scales 1e-3..1e2, offsets, near-constant and heavy-tailed columns)")
    p.add_argument("--weak-noisy", action="store_true", help="weak, noisy, heavy-tailed, raw-scale audio/vision: the setting where fusion can lose to text alone")
    p.add_argument("--kind", choices=["mosi", "sims"], default="mosi",
                   help="mosi (default): labels in [-3, 3]; sims: CH-SIMS-shaped (audio 33, vision 709 columns, labels in [-1, 1], "
                        "unimodal labels regression_labels_T/A/V), train it with --kind sims")
    p.add_argument("--utterance", action="store_true", help="one vector per utterance and modality, speakers disjoint across splits with their own a/v offsets, many all-zero visual vectors (like utterance-level real features)")
    return parser


def _extract_setting(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. video_fps=5")
    key = key.strip().removeprefix("extract.")  # --set extract.audio_features=... as in the config file's [extract] table
    for kind in (int, float):
        try:
            return key.strip(), kind(value)
        except ValueError:
            pass
    return key.strip(), value.strip()


def _video_table(result: dict) -> str:
    """The clips in their order: score, class, unimodal heads where the model has them, the
    transcript, then each clip's warnings; failed clips with their reason."""
    rows = result["predictions"]
    unimodal = [m for m in ("text", "audio", "vision") if any(m in r.get("unimodal", {}) for r in rows)]
    lines = [f"{'video':<32} {'score':>7} {'class':<9}" + "".join(f" {m[:6]:>7}" for m in unimodal) + "  transcript"]
    entries = [(r["index"], r, None) for r in rows] + [(f["index"], None, f) for f in result["failures"]]
    for _, row, failure in sorted(entries, key=lambda e: e[0]):
        if failure is not None:
            lines.append(f"{_shown(Path(failure['video']).name)[-32:]:<32} not scored ({failure['error']['code']}): {_shown(failure['error']['message'])}")
            continue
        name = _shown(Path(row["video"]).name)
        lines.append(f"{name[-32:]:<32} {row['score']:>7.3f} {row['class']:<9}"
                     + "".join(f" {row['unimodal'][m]:>7.3f}" if m in row.get("unimodal", {}) else f" {'-':>7}" for m in unimodal)
                     + f"  {_shown(row['transcript'][:60]) or '(no transcript)'}")
        lines += [f"{'':<32} warning ({w['code']}): {_shown(w['message'])}" for w in row["warnings"]]
    if unimodal:
        lines.append("text/audio/vision: the model's own unimodal heads (parts of the model), not separate scores")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every failure the user can cause ends in one line on stderr naming the
    file or setting and what to do, with exit code 2; Ctrl-C ends with 130 (and, for training,
    how to resume); anything else is a bug in msakit: one line (exit 70), and ``--debug``
    shows its traceback."""
    args = build_parser().parse_args(argv)
    from msakit.errors import MsakitError

    command_line = "msakit " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        status = _run(args, command_line)
    except KeyboardInterrupt:
        print(f"{_speaker(args)}: interrupted{_resume_hint(args, command_line)}", file=sys.stderr)
        return 130
    except MsakitError as error:
        if args.debug:
            raise
        print(f"{_speaker(args)}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # the user's files: missing, unreadable, a directory, disk full
        if args.debug:
            raise
        where = f"{error.filename}: " if error.filename else ""
        print(f"{_speaker(args)}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - the boundary: a bug, reported as one
        if args.debug:
            raise
        print(
            f"{_speaker(args)}: internal error (a bug in msakit, please report it): {type(error).__name__}: "
            f"{_one_line(error)}. Rerun with --debug for the traceback.",
            file=sys.stderr,
        )
        return 70
    return status or 0


def _speaker(args) -> str:
    """``msakit <command>``; under torchrun, ranks other than 0 say which they are (their lines
    would otherwise repeat rank 0's without telling whose they are)."""
    import os

    rank = os.environ.get("RANK", "0")
    return f"msakit {args.command}" + (f" [rank {rank}]" if rank not in ("", "0") and os.environ.get("WORLD_SIZE", "1") != "1" else "")


def _one_line(error: BaseException) -> str:
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(text.split()) or type(error).__name__


def _resume_hint(args, command_line: str) -> str:
    if args.command != "train" or not getattr(args, "run_dir", None):
        return ""
    run_dir = Path(args.run_dir)
    from msakit.training.checkpoint import has_progress

    if not any(has_progress(seed_dir) for seed_dir in run_dir.glob("seed_*")):
        return f"; no epoch had finished, so nothing in {run_dir} is worth keeping: start again"
    again = command_line if "--resume" in command_line.split() else f"{command_line} --resume"
    if "--run-dir" not in command_line.split():
        again += f" --run-dir {shlex.quote(str(run_dir))}"
    return f"; the finished epochs are saved in {run_dir}. Resume with: {again}"


def world_size() -> int:
    from msakit.training.distributed import world_size as size

    return size()


def is_main_process() -> bool:
    from msakit.training.distributed import is_main_process as main

    return main()


def _launch_torchrun(args, command_line: str) -> int:
    """``msakit train --nproc N ...``: the same command, without ``--nproc``, in N processes on
    this machine through torchrun (``torch.distributed.run --standalone``); its exit status."""
    import os
    import subprocess

    if args.nproc < 1:
        raise ConfigError(f"--nproc {args.nproc}: give the number of processes, 1 or more (one per GPU on a GPU machine)")
    if world_size() > 1:
        raise ConfigError("--nproc: this process is already one of a torchrun group; drop --nproc (torchrun set the processes)")
    argv = shlex.split(command_line)[1:]
    rest, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            rest.append(item)
    if not args.run_dir:  # chosen once here, so every process and the printed hints name one folder
        import msakit

        rest += ["--run-dir", str(msakit.api.default_run_dir(args.model, args.data))]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.nproc)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}", "-m", "msakit.cli", *rest]
    return subprocess.call(command, env=env)


def _run(args, command_line: str) -> int | None:
    """Carry out the command; an int is the exit status where it is not 0 (e.g. clips not scored)."""
    import msakit
    from msakit.config import parse_set_options
    from msakit.metrics import format_table

    if args.command == "train" and args.nproc is not None:
        return _launch_torchrun(args, command_line)
    if args.command == "train":
        overrides = parse_set_options(args.set)
        if args.modalities:
            overrides["data"]["modalities"] = args.modalities
        if args.device:
            overrides["train"]["device"] = args.device
        if args.epochs is not None:
            overrides["train"]["max_epochs"] = args.epochs
        if args.quiet:
            overrides["train"]["progress"] = "false"
        if args.resume and not args.run_dir:
            raise ConfigError("--resume needs --run-dir (the run to continue)")
        if not args.run_dir:  # chosen here so an interrupted run can say where it is
            args.run_dir = str(msakit.api.default_run_dir(args.model, args.data))
            if world_size() > 1:  # under torchrun: rank 0's choice, for every process
                from msakit.training.distributed import context
                from msakit.training.trainer import resolve_device

                args.run_dir = context(resolve_device(overrides["train"].get("device", "auto")).type).from_main(args.run_dir)
        show = print if is_main_process() else (lambda *a, **k: None)  # under torchrun, rank 0 alone prints
        if args.compare_text_only:
            from msakit.api import compare_text_only, side_by_side

            result, text = compare_text_only(args.model, args.data, kind=args.kind, seeds=args.seeds, run_dir=args.run_dir,
                                             overrides=overrides, resume=args.resume)
            show(side_by_side(result, text))
        else:
            result = msakit.train(args.model, args.data, kind=args.kind, seeds=args.seeds, run_dir=args.run_dir, overrides=overrides,
                                  resume=args.resume)
            show(result.table())
            from msakit.workflows.text_only import side_by_side, text_stages

            text = text_stages(result)  # model.fusion=text_first (or auto_text_stage=own): its own text-only runs, at no cost
            if text is not None:
                show()
                show(side_by_side(result, text))
        show(f"run written to {result.run_dir}")
    elif args.command == "evaluate":
        result = msakit.evaluate(args.run_dir, args.data, kind=args.kind, split=args.split, device=args.device)
        for note in result.get("warnings", []):
            print(f"warning: {note}", file=sys.stderr)
        print(format_table(result["summary"], title=f"{args.split} metrics of {args.run_dir}"))
        if len(result["per_seed"]) > 1:  # the same units as the table above (not the fractions of summary.json)
            from msakit.metrics import format_per_seed

            print()
            print(format_per_seed(result["per_seed"], title="per seed"))
        if result.get("ulgm_labels"):
            from msakit.training.runs import ulgm_label_table

            print(ulgm_label_table(result["ulgm_labels"]["per_seed"]))
    elif args.command == "predict" and args.video:
        if args.data:
            raise ConfigError("predict: give --data (a feature pickle) or --video (video files), not both")
        from msakit.api import predict_video

        workers = args.workers if args.workers is not None or args.engine == "ray" else 1
        result = predict_video(args.run_dir, args.video, args.output, kind=args.kind, device=args.device, workers=workers,
                               transcripts=args.transcript, overwrite=args.overwrite, video_ids=args.video_id, engine=args.engine,
                               address=args.address)
        print(_video_table(result))
        print(f"predictions written to {result['csv']} and {result['json']}")
        if result["failures"]:  # exit 1: results written, but not every clip could be scored
            scored = len(result["predictions"])
            print(f"msakit predict: {len(result['failures'])} of {scored + len(result['failures'])} clip(s) not scored "
                  f"(reasons in the table above and the CSV's error column)", file=sys.stderr)
            return 1
    elif args.command == "predict":
        if not args.data:
            raise ConfigError("predict: give --data (a feature pickle) or --video (video files)")
        if args.transcript or args.video_id:
            raise ConfigError("predict: --transcript and --video-id go with --video (one per video file)")
        path = msakit.predict(args.run_dir, args.data, args.output, kind=args.kind, split=args.split, device=args.device,
                              overwrite=args.overwrite)
        print(f"predictions written to {path}")
    elif args.command == "ablate":
        from msakit.workflows.ablation import ablate

        overrides = parse_set_options(args.set)
        overrides["train"].setdefault("progress", "false")
        if args.epochs is not None:
            overrides["train"]["max_epochs"] = args.epochs
        split = lambda text: [p.strip() for p in text.split(";") if p.strip()]  # noqa: E731
        ablate(args.model, args.data, output_dir=args.output, kind=args.kind, seeds=args.seeds, pair_sets=split(args.pair_sets),
               no_ulgm_pair_sets=split(args.no_ulgm_for), align_dim=args.align_dim, overrides=overrides,
               runs_dir=args.runs_dir, command=command_line)
        print((Path(args.output) / "ablation.md").read_text())
    elif args.command == "compare":
        from msakit.workflows.compare import compare

        models = [m.strip() for m in args.models.split(",") if m.strip()]
        shared = [item for item in args.set or [] if ":" not in item.split("=", 1)[0]]
        per_model: dict = {}
        for item in args.set or []:
            if item not in shared:
                name, rest = item.split(":", 1)
                per_model.setdefault(name.strip(), []).append(rest)
        overrides = parse_set_options(shared)
        if args.epochs is not None:
            overrides["train"]["max_epochs"] = args.epochs
        if args.quiet:
            overrides["train"]["progress"] = "false"
        compare(models, args.data, output_dir=args.output, kind=args.kind, seeds=args.seeds, overrides=overrides,
                model_overrides={m: parse_set_options(items) for m, items in per_model.items()}, text_only=args.text_only,
                runs_dir=args.runs_dir, command=command_line, model_data=_model_data(args.model_data), engine=args.engine, address=args.address)
        print((Path(args.output) / "compare.md").read_text())
    elif args.command == "sweep":
        from msakit.workflows.sweep import sweep

        overrides = parse_set_options(args.set)
        if args.epochs is not None:
            overrides["train"]["max_epochs"] = args.epochs
        result = sweep(args.model, args.data, output_dir=args.output, kind=args.kind, space=args.space, n_trials=args.n_trials,
                       storage=args.storage, study_name=args.study, overrides=overrides, seeds=args.seeds, final=not args.no_final,
                       final_only=args.final_only, sampler_seed=args.sampler_seed, heartbeat_interval=args.heartbeat,
                       prune_after=args.prune_after, command=command_line)
        print((Path(args.output) / "trials.md").read_text())
        from msakit.workflows.sweep import rounded

        best = "none (no trial finished)" if result.best_valid_mae is None else f"{result.best_valid_mae:.4f}"
        print(f"best valid MAE {best} with {rounded(result.best_params or {})}; report in {args.output}")
    elif args.command == "extract":
        import os

        from msakit.api import extract

        settings = {}
        if args.config:
            from msakit.extract.config_file import read_extract_config

            settings.update(read_extract_config(args.config))
        settings.update(dict(_extract_setting(text) for text in args.set or []))
        for modality in ("audio", "vision", "text"):
            chosen = getattr(args, f"{modality}_features")
            if chosen:
                name, sep, directory = chosen.partition(":")
                settings[f"{modality}_features"] = name.strip()
                if sep:
                    settings[f"{modality}_encoder"] = directory
        if args.modalities:
            settings["modalities"] = args.modalities.replace(",", "").replace(" ", "")
        try:
            fractions = tuple(float(x) for x in args.split_fractions.split(",")) if args.split_fractions else None
        except ValueError:
            raise ConfigError(f"--split-fractions {args.split_fractions!r}: give three numbers, e.g. 0.7,0.15,0.15") from None
        if args.channel:
            settings["channel"] = args.channel
        default_workers = None if args.engine == "ray" else max(1, (os.cpu_count() or 2) // 2)
        result = extract(args.source, args.output, workers=args.workers if args.workers is not None else default_workers,
                         engine=args.engine, address=args.address,
                         split_fractions=fractions, seed=args.seed, progress=not args.quiet, layout=args.layout, kind=args.kind,
                         overwrite=args.overwrite, verbose=args.verbose, **settings)
        print(result.report(brief=args.quiet))
        print(f"feature description written to {result.sidecar}")
    elif args.command == "robustness":
        from msakit.workflows.robustness import robustness

        grid = dict(rates=_floats(args.rates, "--rates"), missing=args.missing, frame_drop=args.frame_drop, noise=args.noise,
                    snrs=_floats(args.snr, "--snr"), word_errors=args.word_errors, incomplete=args.incomplete)
        output = Path(args.output) if args.output else Path(args.run_dir) / "robustness"
        robustness(args.run_dir, args.data, kind=args.kind, split=args.split, grid=grid, corruption_seed=args.seed, output_dir=output,
                   device=args.device, command=command_line)
        print((output / "robustness.md").read_text())
        print(f"written to {output}/robustness.json, .md, .png")
    elif args.command == "serve":
        import os

        from msakit.workflows.serve import serve

        token = args.token if args.token is not None else os.environ.get("MSAKIT_SERVE_TOKEN")
        if token is not None and not token.strip():
            where = "--token" if args.token is not None else "MSAKIT_SERVE_TOKEN"
            raise ConfigError(f"{where}: empty; give a secret string (the page and API then ask for it), or leave it out on 127.0.0.1")
        serve(args.run_dir, host=args.host, port=args.port, token=token,
              max_mb=args.max_mb, workers=args.workers, queue=args.queue, max_clips=args.max_clips, device=args.device, kind=args.kind)
    elif args.command == "synth" and args.clips is not None:
        ignored = [flag for flag, given in (("--aligned", args.aligned), ("--raw-scale", args.raw_scale), ("--weak-noisy", args.weak_noisy),
                                            ("--utterance", args.utterance), ("--kind", args.kind != "mosi"), ("--n-train", args.n_train is not None),
                                            ("--n-valid", args.n_valid is not None), ("--n-test", args.n_test is not None)) if given]
        if ignored:
            raise ConfigError(f"synth --clips: {ignored[0]} shapes the synthetic pickle, not the clip set; leave it out (the clips' "
                              "split comes from msakit extract --split-fractions)")
        from msakit.extract.media import write_labelled_clips

        try:
            manifest = write_labelled_clips(Path(args.output), args.clips, seed=args.seed, overwrite=args.overwrite)
        except ModuleNotFoundError as error:
            raise ConfigError(f"synth --clips needs the video extra ({error.name} is missing): pip install -e \".[video]\"") from None
        print(f"{args.clips} labelled clips written to {args.output}; their labels, transcripts and videos in {manifest}")
    elif args.command == "synth":
        spec = dict(seed=args.seed, aligned=args.aligned)
        for name in ("n_train", "n_valid", "n_test"):  # the chosen setting's own sizes unless given
            if getattr(args, name) is not None:
                spec[name] = getattr(args, name)
        if args.raw_scale:
            spec["raw_scale"] = True
        path = msakit.make_synthetic(Path(args.output), weak_noisy=args.weak_noisy, utterance=args.utterance, kind=args.kind,
                                     overwrite=args.overwrite, **spec)
        print(f"synthetic dataset written to {path}")


if __name__ == "__main__":
    sys.exit(main())
