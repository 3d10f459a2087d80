"""The incumbent's classic models (EF-LSTM, LF-DNN, MLF-DNN, MTFN, MLMF, TFR-Net, MFN, Graph-MFN,
MFM, MCTN) on synthetic data.

Three comparisons (``msakit compare``, 3 seeds, every model at its own defaults, model selected on
validation MAE, test metrics mean ± std):

- ``standard``: the default synthetic data (``msakit synth``); EF-LSTM, which needs word-aligned
  frames, trains on the aligned file of the same samples (``msakit synth --aligned``).
- ``aligned``: the word-aligned models (MFN, Graph-MFN, MFM, MCTN) on the aligned file of the
  default synthetic samples (``msakit synth --aligned``).
- ``sims``: a SIMS-shaped set (``msakit synth --kind sims``, ``sims_spec()``): the same generator with CH-SIMS's feature sizes (audio 33,
  vision 709) and labels on [-1, 1] (every label, multimodal and unimodal, divided by 3), read
  as ``kind=sims``; its planted unimodal labels play CH-SIMS's human ``regression_labels_T/A/V``.
  The multi-task models (MLF-DNN, MTFN, MLMF, trained on them) beside Self-MM (which generates
  its own unimodal labels with ULGM).

    python benchmarks/classic_models_synthetic.py --part standard --models lf_dnn,mlf_dnn
    python benchmarks/classic_models_synthetic.py --part sims
    python benchmarks/classic_models_synthetic.py --part aligned

Results: ``benchmarks/results/classic_models_<part>/compare.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, command_line  # noqa: E402

from msakit.data.synthetic import SyntheticSpec, sims_spec, write_synthetic  # noqa: E402
from msakit.workflows.compare import compare  # noqa: E402

PARTS = {
    "standard": ("ef_lstm", "lf_dnn", "mlf_dnn", "mtfn", "mlmf", "tfr_net"),
    "aligned": ("mfn", "graph_mfn", "mfm", "mctn"),
    "sims": ("mlf_dnn", "mtfn", "mlmf", "self_mm"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=sorted(PARTS), required=True)
    parser.add_argument("--models", help="a subset of the part's models (comma-separated)")
    parser.add_argument("--seeds", default="1111,1112,1113")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", default="/tmp/msakit-bench-classic")
    args = parser.parse_args()
    models = args.models.split(",") if args.models else list(PARTS[args.part])
    unknown = set(models) - set(PARTS[args.part])
    if unknown:
        parser.error(f"--models: {sorted(unknown)} are not in part {args.part!r} ({', '.join(PARTS[args.part])})")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    model_data = {}
    if args.part == "aligned":  # the word-aligned models, on the aligned file of the default samples
        data = work / "synthetic_aligned.pkl"
        if not data.exists():
            write_synthetic(data, SyntheticSpec(aligned=True))
        kind = "mosi"
    elif args.part == "standard":
        data = work / "synthetic.pkl"
        if not data.exists():
            write_synthetic(data, SyntheticSpec())
        aligned = work / "synthetic_aligned.pkl"
        if not aligned.exists():
            write_synthetic(aligned, SyntheticSpec(aligned=True))
        model_data["ef_lstm"] = aligned
        kind = "mosi"
    else:
        data = work / "sims_shaped.pkl"
        if not data.exists():
            write_synthetic(data, sims_spec())  # msakit synth sims_shaped.pkl --kind sims
        kind = "sims"
    output = RESULTS / f"classic_models_{args.part}"
    compare(
        models,
        data,
        output_dir=output,
        kind=kind,
        seeds=[int(s) for s in args.seeds.split(",")],
        overrides={"train": {"max_epochs": args.epochs, "num_threads": args.threads, "progress": False}},
        runs_dir=work / f"runs_{args.part}",
        command=command_line(),
        model_data={m: p for m, p in model_data.items() if m in models},
    )
    print(f"wrote {output / 'compare.md'}")


if __name__ == "__main__":
    main()
