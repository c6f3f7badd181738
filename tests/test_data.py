"""camp.data and camp.corpus_checks: the loaders, their errors, and corpus quality checks that can fail."""

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict

from camp import corpus_checks, data


@pytest.fixture(scope="module")
def corpus(emotions) -> DatasetDict:
    return emotions


@pytest.fixture
def corpus_copy(tmp_path, monkeypatch):
    """A copy of the packaged corpus that a test may damage; the loader is pointed at it."""
    folder = tmp_path / "corpus"
    shutil.copytree(data.corpus_dir(), folder)
    monkeypatch.setattr(data, "corpus_dir", lambda: folder)
    return folder


# The narrative register's test split, frozen since the course began: old figures stay comparable.
NARRATIVE_TEST_SHA256 = "1c3939ad9adb3d222d914299dcf549be9155672baef8c88961d46923d7f73de7"  # commit 7c7feaf


def test_offline_corpus_size_labels_and_splits(corpus):
    sizes = {s: len(corpus[s]) for s in data.SPLITS}
    assert sizes == {"train": 4040 + 2880, "validation": 505 + 360, "test": 505 + 360}  # both registers
    assert set(corpus) == set(data.SPLITS)
    for split in data.SPLITS:
        feature = corpus[split].features["label"]
        assert isinstance(feature, ClassLabel) and tuple(feature.names) == data.EMOTIONS
        assert set(corpus[split]["label"]) == set(range(6))  # all six emotions in every split
    total = sum(sizes.values())
    assert abs(sizes["train"] / total - 0.8) < 0.01
    assert abs(sizes["validation"] / total - 0.1) < 0.01 and abs(sizes["test"] / total - 0.1) < 0.01


def test_registers_load_apart_and_together(corpus):
    parts = {r: data.load_emotions("offline", verbose=False, register=r) for r in data.REGISTERS}
    assert {r: [len(d[s]) for s in data.SPLITS] for r, d in parts.items()} == {
        "narrative": [4040, 505, 505], "conversational": [2880, 360, 360]}
    for split in data.SPLITS:  # "both" (the default) is narrative then conversational, row for row
        both = [*parts["narrative"][split]["text"], *parts["conversational"][split]["text"]]
        assert list(corpus[split]["text"]) == both
    counts = Counter(parts["conversational"]["test"]["label"])
    assert set(counts.values()) == {60}  # 600 texts per emotion, 10 % of each in test


def test_the_narrative_test_split_is_unchanged_since_the_course_began():
    path = data.corpus_dir() / "emotions_test.csv"
    assert data._sha256(path) == NARRATIVE_TEST_SHA256


def test_bad_register_is_refused_and_auto_with_a_register_stays_offline(monkeypatch):
    with pytest.raises(ValueError, match="register must be one of"):
        data.load_emotions("offline", register="tweets")
    with pytest.raises(ValueError, match="source='offline'"):
        data.load_emotions("hub", register="narrative")
    monkeypatch.setattr(data.utils, "hub_available", lambda: True)
    monkeypatch.setattr(data, "_hub", lambda revision: pytest.fail("a register names camp's corpus: no hub call"))
    assert len(data.load_emotions("auto", register="conversational")["train"]) == 2880


def test_at_least_300_per_class_with_love_and_surprise_the_minorities():
    narrative = data.load_emotions("offline", verbose=False, register="narrative")
    counts = Counter(label for s in data.SPLITS for label in narrative[s]["label"])
    named = {data.EMOTIONS[k]: n for k, n in counts.items()}
    assert min(named.values()) >= 300
    assert sorted(named, key=named.get)[:2] == ["surprise", "love"]


def test_offline_load_takes_under_two_seconds():
    # pandas and datasets load with the first call now (a bare GPU machine has neither); their import is the
    # libraries' cost, not the corpus's, so it happens before the clock starts, as it did when data imported them.
    code = ("import time, pandas, datasets; from camp import data; t = time.perf_counter(); "
            "d = data.load_emotions('offline', verbose=False); print(time.perf_counter() - t, sum(map(len, d.values())))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    seconds, rows = out.stdout.split()
    assert int(rows) == 8650 and float(seconds) < 2.0, out.stdout


def test_splits_are_fixed_by_the_manifest(corpus):
    manifest = json.loads((data.corpus_dir() / "MANIFEST.json").read_text())
    for split in data.SPLITS:
        rows = [manifest["files"][f"{name}_{split}.csv"]["rows"] for name in ("emotions", "conversational")]
        assert sum(rows) == len(corpus[split])
    assert manifest["licence"] == "CC BY 4.0"


def test_unknown_source_is_refused():
    with pytest.raises(ValueError, match="source must be one of"):
        data.load_emotions("kaggle")


def test_hub_source_offline_fails_fast_with_advice():
    with pytest.raises(data.DataError, match="load_emotions\\('offline'\\)"):
        data.load_emotions("hub")


def test_auto_says_it_picked_offline(capsys):
    data.load_emotions("auto")
    assert "offline corpus" in capsys.readouterr().out


def test_corrupted_file_is_refused(corpus_copy):
    path = corpus_copy / "emotions_test.csv"
    path.write_bytes(path.read_bytes()[:-200])  # a truncated download or a bad edit
    with pytest.raises(data.DataError, match="emotions_test.csv is corrupted"):
        data.load_emotions("offline")


def test_wrong_columns_are_refused(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("sentence,emotion\nhello there friend,joy\n")
    with pytest.raises(data.DataError, match="exactly the columns"):
        data.read_split_csv(path)


def test_unknown_label_and_empty_text_are_refused(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("text,label\nhello there friend,disgust\n")
    with pytest.raises(data.DataError, match="labels outside"):
        data.read_split_csv(path)
    path.write_text('text,label\n"  ",joy\n')
    with pytest.raises(data.DataError, match="empty texts"):
        data.read_split_csv(path)


def test_check_emotions_refuses_other_label_names():
    bad = Dataset.from_dict({"text": ["a"], "label": [0]}).cast_column("label", ClassLabel(names=["neg", "pos"]))
    with pytest.raises(data.DataError, match="ClassLabel named"):
        data.check_emotions(DatasetDict({"train": bad, "validation": bad, "test": bad}))


def test_situations_bank():
    situations = data.load_situations()
    counts = Counter(s.emotion for s in situations)
    assert len(situations) >= 360 and min(counts.values()) >= 60 and set(counts) == set(data.EMOTIONS)
    for s in situations:
        assert 0 < s.intensity <= 1 and len(s.better) >= 3 and len(s.worse) >= 3
        assert s.description and 5 <= len(s.opening.split()) <= 40
    texts = [s.opening for s in situations] + [s.description for s in situations]
    assert not corpus_checks.exact_duplicates(texts)  # each situation written individually


def test_bad_situation_line_names_the_line(tmp_path):
    path = tmp_path / "s.jsonl"
    good = (data.corpus_dir() / "situations.jsonl").read_text().splitlines()[0]
    path.write_text(good + "\n" + '{"id": "x", "emotion": "joy"}\n')
    with pytest.raises(data.DataError, match="s.jsonl:2 is not a valid situation"):
        data.load_situations(path)


# ---- quality checks: each runs on the real corpus, then on a planted problem that it must catch ----

def _all_texts(dd):
    return [t for s in data.SPLITS for t in dd[s]["text"]]


def test_no_exact_duplicates(corpus):
    assert corpus_checks.exact_duplicates(_all_texts(corpus)) == []
    planted = _all_texts(corpus) + ["  " + corpus["train"][0]["text"].upper()]
    assert len(corpus_checks.exact_duplicates(planted)) == 1


def test_no_near_duplicates_across_splits(corpus):
    assert corpus_checks.cross_split_near_duplicates(corpus) == []


def test_a_planted_cross_split_duplicate_is_caught(corpus):
    small = DatasetDict({s: corpus[s].select(range(40)) for s in data.SPLITS})
    assert corpus_checks.cross_split_near_duplicates(small) == []
    leaked = small["train"][3]["text"].replace(".", "!")  # a lightly edited copy of a training sentence
    test = Dataset.from_dict({"text": list(small["test"]["text"]) + [leaked], "label": list(small["test"]["label"]) + [0]},
                             features=small["test"].features)
    found = corpus_checks.cross_split_near_duplicates(DatasetDict({**small, "test": test}))
    assert [(a, i, b, j) for a, i, b, j, _ in found] == [("train", 3, "test", 40)]


def test_class_shares_within_band(corpus):
    assert corpus_checks.shares_out_of_band(corpus) == []
    for register in data.REGISTERS:
        part = data.load_emotions("offline", verbose=False, register=register)
        assert corpus_checks.shares_out_of_band(part, register) == []
        assert corpus_checks.shares_out_of_band(part, "both") != []  # the targets differ: the check can tell
    keep = [i for i, y in enumerate(corpus["validation"]["label"]) if data.EMOTIONS[y] != "surprise"]
    skewed = DatasetDict({**corpus, "validation": corpus["validation"].select(keep)})
    problems = corpus_checks.shares_out_of_band(skewed)
    assert any(p.startswith("validation/surprise") for p in problems)


def test_no_template_fingerprints(corpus):
    texts = _all_texts(corpus)
    opener, share = corpus_checks.top_opener(texts)
    assert share <= corpus_checks.MAX_OPENER_SHARE, (opener, share)
    templated = texts + [f"i feel so happy because of thing number {k}" for k in range(60)]
    assert corpus_checks.top_opener(templated)[1] > corpus_checks.MAX_OPENER_SHARE


def test_tfidf_baseline_is_learnable_but_far_from_perfect(corpus, by_register):
    for dd in (corpus, by_register["conversational"]):
        f1 = corpus_checks.tfidf_baseline_macro_f1(dd)
        assert 0.35 < f1 < 0.95, f1  # above chance (1/6) by far; below 0.95, so no giveaway words


def test_bag_of_words_stays_well_under_the_fine_tuned_model(by_register):
    # The fine-tuned figures come from `python -m camp bench registers`, kept in benchmarks/registers.json.
    kept = json.loads((Path(__file__).parents[1] / "benchmarks" / "registers.json").read_text())
    tuned = next(v for k, v in kept["models"].items() if k.startswith("MiniLM fine-tuned"))["both"]
    for register in data.REGISTERS:
        f1 = corpus_checks.tfidf_baseline_macro_f1(by_register[register])
        assert abs(f1 - kept["models"]["TF-IDF + LR"][register][register]["macro_f1"]) < 1e-3  # the JSON is current
        assert f1 < tuned[register]["macro_f1"] - 0.05, (register, f1, tuned[register]["macro_f1"])


def test_hub_loader_pins_the_revision_and_checks_the_result(monkeypatch):
    # Offline we cannot reach the hub, so stand in for datasets.load_dataset and check what camp asks for.
    calls = []
    feature = ClassLabel(names=list(data.EMOTIONS))
    fake = Dataset.from_dict({"text": ["hi there you"], "label": [1]}).cast_column("label", feature)

    def fake_load_dataset(name, config, revision):
        calls.append((name, config, revision))
        return DatasetDict({s: fake for s in data.SPLITS})

    monkeypatch.setattr("datasets.load_dataset", fake_load_dataset)
    loaded = data.load_emotions("hub")
    assert calls == [("dair-ai/emotion", "split", data.HUB_REVISION)]
    assert len(data.HUB_REVISION) == 40 and set(loaded) == set(data.SPLITS)


def test_auto_falls_back_to_the_corpus_when_the_hub_download_fails(monkeypatch):
    # The probe answers, the download fails (offline mode makes it fail here): a warning, and the lesson goes on.
    monkeypatch.setattr(data.utils, "hub_available", lambda: True)
    with pytest.warns(UserWarning, match="could not load dair-ai/emotion.*offline corpus instead"):
        loaded = data.load_emotions("auto")
    assert len(loaded["train"]) == 6920


@pytest.fixture(scope="module")
def by_register():
    return {r: data.load_emotions("offline", verbose=False, register=r) for r in data.REGISTERS}


def test_labels_cannot_be_read_off_length_punctuation_or_emoji(by_register):
    # The conversational register was written to one set of surface quotas for every emotion (datasheet).
    f1 = corpus_checks.surface_giveaway_macro_f1(by_register["conversational"])
    assert f1 <= corpus_checks.MAX_SURFACE_MACRO_F1, f1  # 0.211 when written; 1/6 is chance for six even classes


@pytest.mark.xfail(strict=True, reason="known limit, kept: the narrative register (frozen since the course began, "
                   "so old figures stay comparable) lets surface features alone reach 0.30 macro-F1 on its test "
                   "split; the datasheet says so")
def test_the_narrative_register_cannot_be_read_off_its_surface(by_register):
    assert corpus_checks.surface_giveaway_macro_f1(by_register["narrative"]) <= corpus_checks.MAX_SURFACE_MACRO_F1


def _shout_joy(dd: DatasetDict) -> DatasetDict:
    """Give every joy text three exclamation marks: a shape, not a meaning, which the check must see."""
    def shout(row):
        return {"text": row["text"] + " !!!" if data.EMOTIONS[row["label"]] == "joy" else row["text"]}

    return DatasetDict({split: dd[split].map(shout) for split in data.SPLITS})


@pytest.mark.parametrize("register, band", [("narrative", (0.25, 0.35)), ("conversational", (0.17, 0.22))])
def test_a_planted_surface_giveaway_is_caught(by_register, register, band):
    base = corpus_checks.surface_giveaway_macro_f1(by_register[register])
    assert band[0] < base < band[1], base  # narrative 0.30, conversational 0.211 (datasheet)
    assert corpus_checks.surface_giveaway_macro_f1(_shout_joy(by_register[register])) > base + 0.1


def test_guessing_in_proportion_scores_what_the_datasheet_says(by_register):
    from camp.metrics import classification_metrics

    for register, band in (("narrative", (0.14, 0.18)), ("conversational", (0.15, 0.19))):
        truth = np.array(by_register[register]["test"]["label"])
        shuffles = np.random.default_rng(0).permuted(np.tile(truth, (50, 1)), axis=1)
        guess = np.mean([classification_metrics(truth, s, len(data.EMOTIONS))["macro_f1"] for s in shuffles])
        assert band[0] < guess < band[1], (register, guess)  # 0.16 and 1/6


def test_surface_features_count_what_they_say():
    rows = corpus_checks.surface_features(["wow 😮 what?! :)", "I am FINE."])
    assert rows[0].tolist()[:8] == [15, 4, 1, 1, 0, 0, 1, 1] and rows[1][4] == 1 and rows[1][8] == 5 / 7


def test_cross_register_trains_on_each_and_tests_on_each(by_register):
    from camp import baselines

    table = baselines.cross_register(baselines.majority, by_register)
    assert set(table) == set(data.REGISTERS) and all(set(row) == set(data.REGISTERS) for row in table.values())
    # The majority class of narrative training text is joy; conversational test texts are 1/6 joy.
    assert table["narrative"]["conversational"]["accuracy"] == pytest.approx(1 / 6)
    assert table["narrative"]["narrative"]["accuracy"] == pytest.approx(0.285, abs=0.002)
    with pytest.raises(ValueError, match="no data for the test registers"):
        baselines.cross_register(baselines.majority, by_register, tests=("tweets",))


def test_lesson_02_quotes_the_kept_register_benchmark():
    # Lesson 02's table of fine-tuned models across registers is `bench.registers_table` of the kept JSON.
    from camp.course import bench

    kept = json.loads((Path(__file__).parents[1] / "benchmarks" / "registers.json").read_text())
    notebook = json.loads((Path(__file__).parents[1] / "solutions" / "02_emotion_classifier"
                           / "02_emotion_classifier.ipynb").read_text())
    text = "\n".join("".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown")
    assert bench.registers_table(kept) in text


def test_lesson_02_quotes_the_kept_class_weights_benchmark():
    # Lesson 01's class weights, used: lesson 02 prints `bench.class_weights_table` of the kept JSON, and every
    # figure its reading quotes is one of the JSON's (a mean, a seed's own, or a weighted-minus-plain difference).
    import re

    from camp.course import bench

    kept = json.loads((Path(__file__).parents[1] / "benchmarks" / "class_weights.json").read_text())
    notebook = json.loads((Path(__file__).parents[1] / "solutions" / "02_emotion_classifier"
                           / "02_emotion_classifier.ipynb").read_text())
    cell = next("".join(c["source"]) for c in notebook["cells"]
                if c["cell_type"] == "markdown" and "benchmarks/class_weights.json" in "".join(c["source"]))
    table = bench.class_weights_table(kept)
    assert table in cell
    reading = cell.replace(table, "")
    mean = kept["mean_over_seeds"]
    pool = [v for run in mean.values() for v in (run["macro_f1"], run["accuracy"], *run["recall"].values())]
    pool += [v for by_seed in kept["runs"].values() for run in by_seed.values()
             for v in (run["macro_f1"], *run["recall"].values())]
    pool += [a - b for a, b in zip(list(mean["weighted"]["recall"].values()) + [mean["weighted"]["macro_f1"]],
                                   list(mean["plain"]["recall"].values()) + [mean["plain"]["macro_f1"]], strict=True)]
    for figure in re.findall(r"[+-]?\d+\.\d{3}", reading):
        assert any(abs(abs(float(figure)) - abs(round(x, 3))) < 6e-4 for x in pool), f"{figure} is not in the JSON"


@pytest.mark.xfail(strict=True, reason="issue 33, open: the preference corpus splits people 48/6/6 per emotion while "
                   "rlhf.split_situations holds out every fifth situation, so the reward model trains on 148 pairs "
                   "about the 72 held-out people; one split of people for the whole course fixes it")
def test_held_out_people_are_in_no_training_set():
    # Every loader that trains something: the RL prompts, and the preference pairs the reward model and DPO learn
    # from (training and validation splits: validation chooses the reward model's weights).
    from camp import rlhf

    train_people, heldout = rlhf.split_situations(data.load_situations())
    held = {s.id for s in heldout}
    assert not held & {s.id for s in train_people}
    seen = {split: [p.situation_id for p in data.load_preferences(split) if p.situation_id in held]
            for split in ("train", "validation")}
    assert seen == {"train": [], "validation": []}, {k: len(v) for k, v in seen.items()}
