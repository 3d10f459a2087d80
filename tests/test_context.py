"""``data.context``: an utterance read with its neighbours of the same video and split. The
neighbours come in clip order, stop at video and split boundaries, never carry a label, leave the
scored utterance whole, and are refused (one line) where the data names no video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from msakit.data.context import ContextSpec, context_token_ids, neighbours, video_order, videos_across_splits
from msakit.errors import ConfigError


def write_video_table(directory: Path, seed: int = 0, with_ids: bool = True) -> Path:
    """train/dev/test tables of four videos each, in a shuffled row order, with video_id/clip_id."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, videos in (("train", 6), ("dev", 3), ("test", 3)):
        rows = []
        for v in range(videos):
            tone = 1 if (v + seed) % 2 else -1
            for clip in range(1, 6):
                label = float(np.clip(tone * 1.5 + rng.normal(0, 0.5), -3, 3))
                word = "great" if label > 0 else "terrible"
                rows.append((f"{split}v{v}", clip, f"a {word} film {clip}", label))
        order = rng.permutation(len(rows))
        header = "video_id\tclip_id\ttext\tlabel\n" if with_ids else "text\tlabel\n"
        lines = [f"{rows[i][0]}\t{rows[i][1]}\t{rows[i][2]}\t{rows[i][3]:.3f}" if with_ids else f"{rows[i][2]}\t{rows[i][3]:.3f}" for i in order]
        (directory / f"{split}.tsv").write_text(header + "\n".join(lines) + "\n")
    return directory


def test_neighbours_follow_clip_order_and_stop_at_the_video():
    ids = ["b$_$2", "a$_$10", "a$_$2", "b$_$1", "a$_$1", "c$_$7"]
    assert video_order(ids) == {"b": [3, 0], "a": [4, 2, 1], "c": [5]}  # clip 10 after clip 2: numbers, not strings
    both = neighbours(ids, 1)
    assert both[2] == ([4], [1]) and both[4] == ([], [2]) and both[1] == ([2], []) and both[5] == ([], [])
    assert neighbours(ids, 2)[1] == ([2, 4], [])  # closest first
    assert neighbours(ids, 2, "past")[4] == ([], []) and neighbours(ids, 2, "past")[2] == ([4], [])
    assert all(n == ([], []) for n in neighbours(ids, 0))


def test_the_scored_utterance_comes_first_and_whole_and_neighbours_are_cut_far_from_it(tiny_bert_dir):
    from msakit.encoders.text import load_tokenizer

    tokenizer = load_tokenizer(tiny_bert_dir)
    texts = ["a great film one two three", "a terrible film", "a good story", "a bad story", "a great great film"]
    ids = [f"v$_${i}" for i in range(1, 6)]
    plain = tokenizer(texts, add_special_tokens=False)["input_ids"]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    full = context_token_ids(plain, ContextSpec(2), ids, tokenizer, 128)
    # [CLS] own [SEP] previous (far..near) [SEP] next (near..far) [SEP]
    assert full[2] == [cls, *plain[2], sep, *plain[0], *plain[1], sep, *plain[3], *plain[4], sep]
    assert full[0] == [cls, *plain[0], sep, sep, *plain[1], *plain[2], sep]
    past = context_token_ids(plain, ContextSpec(2, "past"), ids, tokenizer, 128)
    assert past[2] == [cls, *plain[2], sep, *plain[0], *plain[1], sep, sep]
    # A tight budget: the scored utterance stays whole; the nearest previous neighbour keeps its end.
    budget = 3 + len(plain[2]) + 1 + 2
    tight = context_token_ids(plain, ContextSpec(2), ids, tokenizer, budget)
    assert len(tight[2]) == budget and tight[2][: 1 + len(plain[2])] == [cls, *plain[2]]
    assert tight[2] == [cls, *plain[2], sep, *plain[1][-2:], sep, sep]
    # A scored utterance longer than the budget is cut to leave room for the pair's special tokens:
    # the row never exceeds the budget (at the encoder's position limit, one token more failed in it).
    assert context_token_ids(plain, ContextSpec(1), ids, tokenizer, 6)[0] == [cls, *plain[0][:2], sep, sep, sep]
    assert all(len(row) <= n for n in (5, 6, 7, 8) for row in context_token_ids(plain, ContextSpec(2), ids, tokenizer, n))


def test_a_text_table_names_its_videos_and_context_reads_them(tiny_bert_dir, tmp_path):
    from msakit.data import load_dataset
    from msakit.data.batching import BatchBuilder
    from msakit.encoders.text import load_tokenizer

    data = load_dataset(write_video_table(tmp_path / "t"), "mosi", ("t",))
    train = data["train"]
    assert all("$_$" in i for i in train.ids) and videos_across_splits(data.splits) == {}
    tokenizer = load_tokenizer(tiny_bert_dir)
    plain = BatchBuilder(train, ("t",), tokenizer)
    read = BatchBuilder(train, ("t",), tokenizer, context=ContextSpec(1))
    row = train.ids.index("trainv2$_$3")
    before, after = train.ids.index("trainv2$_$2"), train.ids.index("trainv2$_$4")
    expected = tokenizer(train.raw_text[row], train.raw_text[before] + " [SEP] " + train.raw_text[after])["input_ids"]
    assert read.token_ids[row] == expected and plain.token_ids[row] != expected


@pytest.mark.bad_input
def test_context_without_video_ids_is_refused_in_one_line(tiny_bert_dir, tmp_path, capsys):
    from msakit.cli import main

    data = write_video_table(tmp_path / "plain", with_ids=False)
    code = main(["train", "--model", "self_mm", "--data", str(data), "--epochs", "1", "--run-dir", str(tmp_path / "run"),
                 "--set", f"model.text_encoder={tiny_bert_dir}", "--set", "data.context=2", "--set", "train.progress=false"])
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the note on the modality dropout it skips
    assert code == 2 and err.startswith("msakit train: error:") and "data.context needs each sample's video" in err and "video_id" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.bad_input
def test_a_repeated_clip_of_a_video_is_refused_at_its_line(tmp_path):
    from msakit.data.text_table import read_text_table
    from msakit.errors import DataError

    table = tmp_path / "train.tsv"
    table.write_text("video_id\tclip_id\ttext\tlabel\nv1\t1\ta\t0.5\nv1\t2\tb\t0.5\nv1\t1\tc\t0.5\n")
    with pytest.raises(DataError, match=r"line 4: video_id 'v1' with clip_id '1' again \(first on line 2\)"):
        read_text_table(table, split_name="train")


def test_videos_split_across_splits_are_named(tiny_bert_dir, tmp_path, capsys):
    import msakit

    data = write_video_table(tmp_path / "t")
    dev = data / "dev.tsv"
    dev.write_text(dev.read_text() + "trainv1\t99\ta great film\t1.0\n")  # one utterance of a training video in dev
    msakit.train("self_mm", data, run_dir=tmp_path / "run", overrides={
        "model": {"text_encoder": str(tiny_bert_dir)}, "data": {"context": 1}, "train": {"max_epochs": 1, "progress": False}})
    err = capsys.readouterr().err
    assert "1 video(s) have utterances in more than one split: trainv1 (train+valid)" in err


def test_shuffling_other_videos_labels_changes_nothing(tiny_bert_dir, tmp_path):
    """Labels never enter the context: a run's predictions on a split whose other videos'
    labels were shuffled are the same, bit for bit."""
    import msakit
    from msakit.training.runs import predict_split

    data = write_video_table(tmp_path / "t")
    run = msakit.train("self_mm", data, run_dir=tmp_path / "run", overrides={
        "model": {"text_encoder": str(tiny_bert_dir)}, "data": {"context": 2}, "train": {"max_epochs": 1, "progress": False}}).run_dir
    seed_dir = run / "seed_1111"
    before, _, _ = predict_split(seed_dir, data, None, "test", "cpu")
    lines = (data / "test.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in lines[1:]]
    others = [i for i, r in enumerate(rows) if r[0] != "testv0"]
    shuffled = np.random.default_rng(5).permutation([rows[i][3] for i in others])
    for i, label in zip(others, shuffled):
        rows[i][3] = label
    changed = tmp_path / "changed"
    changed.mkdir()
    for name in ("train.tsv", "dev.tsv"):
        (changed / name).write_text((data / name).read_text())
    (changed / "test.tsv").write_text("\n".join([lines[0]] + ["\t".join(r) for r in rows]) + "\n")
    after, target, _ = predict_split(seed_dir, changed, None, "test", "cpu")
    assert not np.array_equal(target.labels["m"], msakit.data.load_dataset(data, "mosi", ("t",))["test"].labels["m"])
    assert np.array_equal(before["m"], after["m"])
    # ... and the context is read: the same run without it predicts otherwise.
    config = seed_dir / "config.json"
    import json

    saved = json.loads(config.read_text())
    saved["data"]["context"] = 0
    config.write_text(json.dumps(saved))
    alone, _, _ = predict_split(seed_dir, data, None, "test", "cpu")
    assert not np.allclose(alone["m"], before["m"])


@pytest.mark.bad_input
def test_context_refuses_word_aligned_features_and_runs_without_text(tiny_bert_dir, small_synthetic, tmp_path):
    import msakit
    from msakit.data.synthetic import SyntheticSpec, write_synthetic

    aligned = write_synthetic(tmp_path / "aligned.pkl", SyntheticSpec(n_train=48, n_valid=16, n_test=16, aligned=True, seed=1))
    overrides = {"model": {"text_encoder": str(tiny_bert_dir)}, "data": {"context": 1}, "train": {"max_epochs": 1, "progress": False}}
    with pytest.raises(ConfigError, match="word-aligned"):
        msakit.train("self_mm", aligned, run_dir=tmp_path / "a", overrides=overrides)
    with pytest.raises(ConfigError, match="uses none of them"):
        msakit.train("self_mm", small_synthetic, run_dir=tmp_path / "b", overrides={**overrides, "data": {"context": 1, "modalities": ("a", "v")}})


def test_the_standard_error_of_a_split_resamples_its_videos():
    from msakit.metrics import bootstrap_standard_errors

    rng = np.random.default_rng(0)
    videos = np.repeat(np.arange(10), 23)
    offset = rng.normal(0, 1.0, 10)[videos]  # each speaker's own bias: errors within a video go together
    labels = rng.uniform(-3, 3, videos.size)
    predictions = labels + offset + rng.normal(0, 0.3, videos.size)
    by_sample = bootstrap_standard_errors(predictions, labels, "mosi")
    by_video = bootstrap_standard_errors(predictions, labels, "mosi", groups=videos)
    assert by_sample["resampled"] == "samples" and by_video["resampled"] == "videos" and by_video["units"] == 10
    assert by_video["standard_errors"]["MAE"] > 2 * by_sample["standard_errors"]["MAE"]  # 10 speakers measure less than 230 samples
    assert by_video == bootstrap_standard_errors(predictions, labels, "mosi", groups=videos)  # seeded


def test_a_trained_run_reports_the_standard_error_of_its_evaluated_split(tiny_bert_dir, tmp_path):
    import json

    import msakit

    summary = msakit.train("self_mm", write_video_table(tmp_path / "t"), run_dir=tmp_path / "run", overrides={
        "model": {"text_encoder": str(tiny_bert_dir)}, "train": {"max_epochs": 1, "progress": False}})
    done = json.loads((summary.run_dir / "seed_1111" / "results.json").read_text())
    errors = done["metrics_standard_error"]
    assert errors["resampled"] == "videos" and errors["units"] == 3 and errors["standard_errors"]["MAE"] > 0
    assert "Standard error within the test split (bootstrap over its 3 videos): Acc-2 (non-0) ±" in summary.table()
    # the split the run was selected on, with the best weights: its metrics and their standard error
    valid = done["valid_metrics_standard_error"]
    assert valid["resampled"] == "videos" and valid["units"] >= 2 and valid["standard_errors"]["MAE"] > 0
    assert abs(done["valid_metrics"]["MAE"] - done["best_valid_MAE"]) < 1e-6
    assert "Standard error within the valid split the run was selected on (bootstrap over its" in summary.table()


@pytest.mark.parametrize("encoder", ["join", "lstm"])
def test_clips_of_one_video_are_each_others_context_when_scored(tiny_bert_dir, tmp_path, encoder):
    pytest.importorskip("av")
    pytest.importorskip("moonshine_voice")
    import msakit
    from msakit.extract.media import voice, write_clip
    from msakit.workflows.predict_video import predict_video

    # lr_text: the tiny random encoder learns the words in 4 epochs (at Self-MM's 5e-5 the run
    # stays near a constant, and a neighbour's effect hides below the score's 4 decimals).
    run = msakit.train("self_mm", write_video_table(tmp_path / "t"), run_dir=tmp_path / "run", overrides={
        "model": {"text_encoder": str(tiny_bert_dir), "lr_text": 1e-3}, "data": {"context": 1, "context_encoder": encoder},
        "train": {"max_epochs": 4, "progress": False}}).run_dir
    clips = [write_clip(tmp_path / f"c{i}.mp4", seconds=0.6, size=(160, 120), audio=voice(0.6, seed=i)) for i in range(3)]
    texts = ["a great film", "a terrible film", "a great film"]
    together = predict_video(run, clips, tmp_path / "p.csv", transcripts=texts, video_ids=["v", "v", "w"], progress=False)
    rows = {r["index"]: r for r in together["predictions"]}
    assert rows[0]["warnings"] == [] and rows[1]["warnings"] == []
    assert [w["code"] for w in rows[2]["warnings"]] == ["no_context"] and "no other clip of video 'w'" in rows[2]["warnings"][0]["message"]
    alone = predict_video(run, clips[:1], tmp_path / "q.csv", transcripts=texts[:1], progress=False)
    (row,) = alone["predictions"]
    assert [w["code"] for w in row["warnings"]] == ["no_context"] and "names no video" in row["warnings"][0]["message"]
    assert row["score"] != rows[0]["score"]  # the neighbour was read
    assert row["score"] == rows[2]["score"] or abs(row["score"] - rows[2]["score"]) < 1e-3  # the same text with empty context
    with pytest.raises(ConfigError, match="--video-id"):
        predict_video(run, clips, tmp_path / "r.csv", transcripts=texts, video_ids=["v"], progress=False)


def test_a_served_context_run_says_so(tiny_bert_dir, tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("moonshine_voice")
    from fastapi.testclient import TestClient

    import msakit
    from msakit.workflows.predict_video import VideoScorer
    from msakit.workflows.serve import create_app

    run = msakit.train("self_mm", write_video_table(tmp_path / "t"), run_dir=tmp_path / "run", overrides={
        "model": {"text_encoder": str(tiny_bert_dir)}, "data": {"context": 2, "context_side": "past"},
        "train": {"max_epochs": 1, "progress": False}}).run_dir
    info = TestClient(create_app(VideoScorer(run, device="cpu"))).get("/api/model").json()
    assert info["context"] == {"k": 2, "side": "past", "modalities": ["t"]} and "with its neighbours (2 previous utterance(s) of the same video)" in info["description"]


def test_a_manifests_video_id_names_the_video_in_the_clip_ids(tmp_path):
    from msakit.data.context import video_of
    from msakit.extract.sources import read_manifest

    (tmp_path / "talks").mkdir()
    for name in ("a_1.mp4", "a_2.mp4", "b_1.wav"):
        (tmp_path / "talks" / name).write_bytes(b"")
    (tmp_path / "m.csv").write_text("path,label,video_id\ntalks/a_1.mp4,1,a\ntalks/a_2.mp4,1,a\ntalks/b_1.wav,-1,b\n")
    ids = [c.id for c in read_manifest(tmp_path / "m.csv").clips]
    assert ids == ["a$_$a_1", "a$_$a_2", "b$_$b_1"] and [video_of(i)[0] for i in ids] == ["a", "a", "b"]


def test_text_context_on_a_frozen_encoder_is_warned_about(tiny_bert_dir, tmp_path, capsys):
    """Joined transcripts through a frozen encoder lowered TFN's accuracy on CMU-MOSI: the run says so."""
    from msakit.config import resolve_config
    from msakit.training.trainer import Trainer

    data = write_video_table(tmp_path / "t")

    def build(encoder="join", **model):
        config = resolve_config("tfn", data_path=str(data), overrides={
            "model": {"text_encoder": str(tiny_bert_dir), **model}, "data": {"context": 1, "context_encoder": encoder}, "train": {"progress": False}})
        Trainer(config, tmp_path / "run")
        return capsys.readouterr().err

    assert "text encoder is frozen" in build() and "model.text_finetune=true" in build() and "data.context_encoder=lstm" in build()
    assert "text encoder is frozen" not in build(text_finetune=True)
    assert "text encoder is frozen" not in build("lstm")  # the transcript is read alone, its neighbours through the LSTM
