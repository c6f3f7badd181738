"""camp.judge: the judge's own check on clear cases, and the paired comparison used for before/after."""

import numpy as np
import pytest

from camp import data, evaluate, judge, metrics


def test_judge_checks_cover_every_emotion_and_failure():
    checks = data.load_judge_checks()
    assert len(checks) == 36 and len({c.id for c in checks}) == 36
    assert {e: sum(c.emotion == e for c in checks) for e in data.EMOTIONS} == dict.fromkeys(data.EMOTIONS, 6)
    assert {"cheerful", "platitude", "cold", "dismissive", "off-topic", "gloomy", "wrong-feeling"} <= \
        {c.worse_kind for c in checks}
    assert all(c.better != c.worse for c in checks)


def test_check_scores_a_coin_at_half_and_a_perfect_judge_at_one():
    checks = data.load_judge_checks()
    better = {c.better for c in checks}
    assert judge.check(lambda replies, people: np.array([r in better for r in replies], float))["agreement"] == 1.0
    assert judge.check(lambda replies, people: np.array([r not in better for r in replies], float))["agreement"] == 0.0
    assert judge.check(lambda replies, people: np.zeros(len(replies)))["agreement"] == 0.5
    with pytest.raises(ValueError, match="no judge checks"):
        judge.check(checks=[])


def test_attunement_passes_the_check_and_warmth_does_not():
    """Why lesson 06 judges with attunement: warmth prefers cheer to sympathy, so it is no better than a coin."""
    att = judge.check(judge.score)
    warm = judge.check(lambda replies, people: judge.warmth(replies))
    assert att["agreement"] >= 0.8, att
    assert warm["agreement"] <= 0.6, warm
    assert warm["by_kind"]["cheerful"] < 0.5 < att["by_kind"]["cheerful"]
    person = data.load_judge_checks()[0]  # anything with an emotion stands for the person
    assert judge.score(["I'm so sorry, losing him must hurt."], [person])[0] == \
        judge.attunement(["I'm so sorry, losing him must hurt."], [person.emotion])[0]


def test_a_damaged_checks_file_gets_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "judge_checks.jsonl").write_text('{"id": "x", "emotion": "sadness"}\n')
    monkeypatch.setattr(data, "corpus_dir", lambda: tmp_path)
    with pytest.raises(data.DataError, match="judge_checks.jsonl:1 is not a valid judge check"):
        data.load_judge_checks()
    (tmp_path / "judge_checks.jsonl").unlink()
    with pytest.raises(data.DataError, match="does not exist"):
        data.load_judge_checks()


def test_paired_bootstrap_refuses_too_little_data():
    with pytest.raises(ValueError, match="at least two finite"):
        metrics.paired_bootstrap([0.1])
    with pytest.raises(ValueError, match="at least two finite"):
        metrics.paired_bootstrap([0.1, float("nan")])
    same = metrics.paired_bootstrap([0.0, 0.1, -0.1, 0.05, -0.05])
    assert same["ci95"][0] < 0 < same["ci95"][1] and same["n"] == 5


def _result(scores, judged, k):
    return {"scores": scores, "judge_scores": judged, "samples_per_person": k}


def test_compare_pairs_each_person_and_refuses_mismatched_evaluations():
    before = _result([0.0, 0.0, 0.1, 0.1, 0.2, 0.2], [0.1] * 6, 2)
    after = _result([0.2, 0.4, 0.3, 0.3, 0.4, 0.6], [0.2, 0.0, 0.1, 0.1, 0.3, 0.1], 2)
    change = evaluate.compare(before, after)
    assert change["reward"]["n"] == 3 and change["reward"]["mean"] == pytest.approx(1.6 / 6)
    assert change["reward"]["ci95"][0] > 0
    assert change["judge_win_rate"] == pytest.approx((2 + 3 * 0.5) / 6)  # two wins, one loss, three ties
    with pytest.raises(ValueError, match="same people"):
        evaluate.compare(before, _result([0.0] * 4, [0.0] * 4, 2))
    with pytest.raises(ValueError, match="same people"):
        evaluate.compare(before, _result([0.0] * 6, [0.0] * 6, 3))
