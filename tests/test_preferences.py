"""The preference corpus, its checks, the Bradley-Terry pieces and the ratings file (lesson 07)."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from camp import corpus_checks, data, preferences
from camp.data import DataError


@pytest.fixture(scope="module")
def pairs():
    return data.load_preferences()


def _other_texts() -> list[str]:
    texts = []
    for c in data.load_judge_checks():
        texts += [c.says, c.better, c.worse]
    for s in data.load_crisis_situations():
        texts += [s.opening, *s.better, *s.worse]
    for split in data.load_emotions("offline", verbose=False).values():
        texts += list(split["text"])
    return texts


# ---------------------------------------------------------------------------------------------------- the corpus
def test_corpus_size_splits_and_situations(pairs):
    assert len(pairs) == 840
    assert {s: len(data.load_preferences(s)) for s in data.SPLITS} == {"train": 672, "validation": 85, "test": 83}
    bank = {s.id: s for s in data.load_situations()}
    assert all(p.says == bank[p.situation_id].opening and p.emotion == bank[p.situation_id].emotion for p in pairs)


def test_camps_corpus_passes_every_preference_check(pairs):
    assert corpus_checks.preference_problems(pairs, _other_texts()) == []
    assert len({p.kind for p in pairs}) >= 12
    assert 0.40 <= corpus_checks.longer_chosen_share(pairs) <= 0.60


def _swap(pair, **changes):
    return dataclasses.replace(pair, **changes)


def test_length_check_catches_a_corpus_where_the_longer_reply_wins(pairs):
    # Make the chosen reply the longer in every pair: a length-only scorer would then be perfect.
    longer = [_swap(p, chosen=p.chosen + " " + p.rejected) for p in pairs]
    assert corpus_checks.longer_chosen_share(longer) == 1.0
    assert any("longer reply is chosen" in x for x in corpus_checks.preference_problems(longer))


def test_repeat_check_catches_a_reply_used_twice(pairs):
    planted = pairs[:10] + [_swap(pairs[10], rejected=pairs[3].chosen.upper())]  # case does not hide it
    assert corpus_checks.repeated_replies(planted) == [corpus_checks.normalise(pairs[3].chosen)]


def test_split_check_catches_a_situation_in_two_splits(pairs):
    test_pair = next(p for p in pairs if p.split == "test")
    planted = [*pairs, _swap(test_pair, id="planted", split="train", chosen="new a", rejected="new b")]
    assert corpus_checks.splits_sharing_a_person(planted) == [test_pair.situation_id]


def test_minimum_check_catches_a_thin_kind_and_emotion(pairs):
    thin = [p for p in pairs if not (p.kind == "parroting" and p.emotion != "joy")]  # joy's 8 parroting pairs left
    assert [x for x in corpus_checks.under_minimum(thin) if x.startswith("kind")] == ["kind parroting: 8"]
    sad = [p for p in pairs if p.emotion == "sadness"]
    fewer = [p for p in pairs if p.emotion != "sadness"] + sad[:80]  # 80 sadness pairs, under 90
    assert corpus_checks.under_minimum(fewer) == ["emotion sadness: 80"]
    assert not corpus_checks.under_minimum(pairs)


def test_reuse_check_catches_a_judge_check_reply(pairs):
    check = data.load_judge_checks()[0]
    planted = [*pairs[:5], _swap(pairs[5], chosen=check.better)]
    assert corpus_checks.reused_texts(planted, _other_texts()) == [corpus_checks.normalise(check.better)]


# ---------------------------------------------------------------------------------------------------- bad files
def _write(tmp_path, rows) -> str:
    path = tmp_path / "prefs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


GOOD = {"id": "p1", "situation_id": "sadness-001", "emotion": "sadness", "kind": "dismissal", "chosen": "a",
        "rejected": "b", "split": "train"}


def test_a_good_file_loads_and_a_free_utterance_needs_no_situation(tmp_path):
    free = {**GOOD, "id": "p2", "situation_id": None, "utterance": "I lost my keys again."}
    loaded = data.load_preferences(path=_write(tmp_path, [GOOD, free]))
    assert [p.says for p in loaded][1] == "I lost my keys again." and loaded[1].situation_id is None


@pytest.mark.parametrize("row, message", [
    ({k: v for k, v in GOOD.items() if k != "chosen"}, "prefs.jsonl:2 misses chosen"),
    ({**GOOD, "id": "p9", "emotion": "glee"}, "prefs.jsonl:2 has the unknown emotion 'glee'"),
    ({**GOOD, "chosen": "c", "rejected": "d"}, "prefs.jsonl:2 repeats the id 'p1' of line 1"),
    ({**GOOD, "id": "p9", "situation_id": "sadness-999"}, "prefs.jsonl:2 names the situation 'sadness-999'"),
    ({**GOOD, "id": "p9", "split": "dev"}, "prefs.jsonl:2 has the unknown split 'dev'"),
    ({**GOOD, "id": "p9", "situation_id": None}, "misses situation_id or utterance"),
])
def test_bad_rows_are_named_by_file_and_line(tmp_path, row, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        data.load_preferences(path=_write(tmp_path, [GOOD, row]))


def test_a_damaged_shipped_file_is_refused(monkeypatch, tmp_path):
    copy = tmp_path / "corpus"
    copy.mkdir()
    for name in ("preferences.jsonl", "situations.jsonl", "MANIFEST.json"):
        (copy / name).write_bytes((data.corpus_dir() / name).read_bytes())
    with open(copy / "preferences.jsonl", "a") as fh:
        fh.write(json.dumps({**GOOD, "id": "extra"}) + "\n")
    monkeypatch.setattr(data, "corpus_dir", lambda: copy)
    with pytest.raises(DataError, match="SHA-256 does not match"):
        data.load_preferences()


# ---------------------------------------------------------------------------------------------------- the pieces
def test_bradley_terry_loss_by_hand():
    # equal scores: a coin, -log(1/2) = log 2; a margin of 2: -log sigmoid(2) = log(1 + e^-2)
    loss = preferences.bradley_terry_loss(torch.tensor([0.0, 2.0]), torch.tensor([0.0, 0.0]))
    assert math.isclose(float(loss), (math.log(2) + math.log1p(math.exp(-2))) / 2, rel_tol=1e-6)
    # a confident mistake costs about its margin and stays finite (log sigmoid(-100) = -100, not -inf)
    assert math.isclose(float(preferences.bradley_terry_loss(torch.tensor([-100.0]), torch.tensor([0.0]))), 100.0,
                        rel_tol=1e-6)
    with pytest.raises(ValueError, match="must match"):
        preferences.bradley_terry_loss(torch.zeros(2), torch.zeros(3))


def test_agreement_counts_ties_half():
    assert preferences.pairwise_accuracy([3, 1, 2, 0], [1, 1, 5, 0]) == (1 + 0.5 + 0 + 0.5) / 4


def test_fit_strengths_recovers_the_order_and_has_mean_zero():
    # item 0 beats 1 three times in four, 1 beats 2 three times in four: strengths fall 0 > 1 > 2
    winners, losers = [0, 0, 0, 1, 1, 1, 1, 2], [1, 1, 1, 0, 2, 2, 2, 1]
    s = preferences.fit_strengths(winners, losers, 3, l2=0.01)
    assert s[0] > s[1] > s[2] and abs(float(s.mean())) < 1e-6
    # without a prior, two items with a 3:1 record differ by log 3; a small prior shrinks that only a little
    two = preferences.fit_strengths([0, 0, 0, 1], [1, 1, 1, 0], 2, l2=1e-6)
    assert math.isclose(float(two[0] - two[1]), math.log(3), rel_tol=1e-3)
    # an item that never lost stays finite
    assert torch.isfinite(preferences.fit_strengths([0, 0], [1, 1], 2)).all()


def test_pair_probabilities_feed_the_classifier_calibration_tools():
    from camp import viz

    probs, labels = preferences.pair_probabilities(np.full(200, 10.0), np.zeros(200))
    assert probs.shape == (200, 2) and set(labels) == {0, 1}  # both orders occur
    assert np.allclose(probs[np.arange(200), labels], 1 / (1 + math.exp(-10)))  # always sure, always right
    assert viz.expected_calibration_error(probs, labels, 5) < 1e-4  # sure and right: calibrated
    wrong = preferences.pair_probabilities(np.zeros(200), np.full(200, 10.0))  # sure and always wrong
    assert viz.expected_calibration_error(*wrong, 5) > 0.99


def test_agreement_report_has_intervals_and_breakdowns(pairs):
    test = [p for p in pairs if p.split == "test"]
    report = preferences.agreement_report({"length": preferences.length_scorer}, test)
    length = report["length"]
    assert math.isclose(length["agreement"], corpus_checks.longer_chosen_share(test))
    assert length["ci95"][0] <= length["agreement"] <= length["ci95"][1] and length["n"] == 83
    assert set(length["by_emotion"]) == set(data.EMOTIONS) and "parroting" in length["by_kind"]


# ---------------------------------------------------------------------------------------------------- ratings
RATING = {"says": "My cat died.", "a": "I'm so sorry.", "b": "Cats are great!", "choice": "a", "emotion": "sadness"}


def test_ratings_append_one_line_each_and_read_back(tmp_path):
    path = tmp_path / "ratings.jsonl"
    preferences.append_rating(path, RATING)
    preferences.append_rating(path, {**RATING, "choice": "b"})
    preferences.append_rating(path, {**RATING, "choice": "tie"})
    assert len(path.read_text().splitlines()) == 3
    pairs = preferences.ratings_to_pairs(preferences.read_ratings(path))
    assert [(p.chosen, p.rejected) for p in pairs] == [("I'm so sorry.", "Cats are great!"),
                                                       ("Cats are great!", "I'm so sorry.")]


def test_empty_or_missing_ratings_file_says_what_to_do(tmp_path):
    with pytest.raises(preferences.RatingsError, match="does not exist yet; rate a few pairs"):
        preferences.read_ratings(tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(preferences.RatingsError, match="holds no ratings yet"):
        preferences.read_ratings(tmp_path / "empty.jsonl")


def test_a_failed_write_keeps_every_earlier_rating(tmp_path, monkeypatch):
    path = tmp_path / "ratings.jsonl"
    preferences.append_rating(path, RATING)
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(preferences, "atomic_write_bytes", disk_full)
    with pytest.raises(preferences.RatingsError, match="earlier ratings are unchanged"):
        preferences.append_rating(path, {**RATING, "choice": "b"})
    assert path.read_bytes() == before


def test_a_file_that_cannot_be_replaced_is_a_clear_error_and_leaves_no_litter(tmp_path, monkeypatch):
    # A read-only file or folder fails at the final rename; simulated, since root ignores permissions.
    import camp.utils

    path = tmp_path / "ratings.jsonl"
    preferences.append_rating(path, RATING)

    def denied(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(camp.utils.os, "replace", denied)
    with pytest.raises(preferences.RatingsError, match="Permission denied.*earlier ratings are unchanged"):
        preferences.append_rating(path, {**RATING, "choice": "b"})
    assert len(path.read_text().splitlines()) == 1 and [p.name for p in tmp_path.iterdir()] == ["ratings.jsonl"]
