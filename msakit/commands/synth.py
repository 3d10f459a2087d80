"""``msakit synth``: the synthetic dataset as an MMSA feature pickle, or (``--clips N``) a tiny labelled clip set."""

from __future__ import annotations

from pathlib import Path

from msakit.errors import ConfigError


def add_parser(sub, common) -> None:
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


def run(args, command_line: str) -> int | None:
    import msakit

    if args.clips is not None:
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
    else:
        spec = dict(seed=args.seed, aligned=args.aligned)
        for name in ("n_train", "n_valid", "n_test"):  # the chosen setting's own sizes unless given
            if getattr(args, name) is not None:
                spec[name] = getattr(args, name)
        if args.raw_scale:
            spec["raw_scale"] = True
        path = msakit.make_synthetic(Path(args.output), weak_noisy=args.weak_noisy, utterance=args.utterance, kind=args.kind,
                                     overwrite=args.overwrite, **spec)
        print(f"synthetic dataset written to {path}")
