"""``msakit extract``: features of video/audio clips into an MMSA feature pickle."""

from __future__ import annotations

from msakit.errors import ConfigError


def add_parser(sub, common) -> None:
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


def run(args, command_line: str) -> int | None:
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
