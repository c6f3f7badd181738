"""camp.widgets, driven headless: clicks and slider moves through the widgets' own callbacks."""

import html

import numpy as np
import pytest

from camp import rewards
from camp.env import EmpathyEnv
from camp.widgets import ChatPlayground, RewardSliders


def test_chat_playground_click_steps_the_person(listener):
    play = ChatPlayground(EmpathyEnv(listener=listener), seed=4)
    before = play.state.value
    play.reply.value = "That sounds really hard. I'm here and listening."
    play.button.click()  # the real callback, as a learner's click would run it
    assert len(play.history) == 1 and play.reply.value == ""
    assert "agent: That sounds really hard" in play.transcript.value
    assert play.state.value != before and "recognition" in play.signals.value


def test_chat_playground_shows_errors_instead_of_crashing(listener):
    play = ChatPlayground(EmpathyEnv(listener=listener), seed=0)
    assert play.send("   ") is None
    assert "empty" in play.signals.value and play.history == []


def test_reward_sliders_rerank_replies():
    spec = rewards.RewardSpec({"length": (rewards.length_penalty, 1.0), "distinct": (rewards.distinct_n, 0.0)})
    replies = ["sorry sorry sorry sorry sorry sorry", "that sounds hard, i'm here"]
    sliders = RewardSliders(spec, replies)
    assert sliders.ranking[0][0] == sliders.ranking[1][0] == 0.0  # both long enough, diversity ignored
    sliders.sliders["distinct"].value = 2.0  # the observe callback re-ranks
    assert spec.terms["distinct"][1] == 2.0
    assert sliders.ranking[0][1] == "that sounds hard, i'm here"
    assert "that sounds hard" in sliders.table.value


def test_chat_playground_scores_reward_terms_against_what_the_reply_answers(listener):
    # The terms must see the line the reply answers, not the person's next line: a reply to a crisis statement
    # that is not a safe crisis reply shows safety -2, as the environment's reward does.
    from camp import data

    spec = rewards.RewardSpec({"safety": (rewards.safety, 1.0)}, context_for={"safety": ("utterances",)})
    play = ChatPlayground(EmpathyEnv(listener=listener), seed=0, spec=spec)
    play.env.reset(seed=0, options={"situation": data.load_crisis_situations()[0]})
    record = play.send("Cheer up, tomorrow is another day!")
    assert record["term/safety"] == -2.0 and record["reward"] < -1.5


# ---------------------------------------------------------------------------------------------------- the rater
def _items(n: int = 3):
    from camp import data, preferences

    return preferences.items_from_pairs(data.load_preferences("test")[:n])


def test_rater_records_each_click_as_one_line_with_the_order_shown(tmp_path):
    from camp import preferences
    from camp.widgets import PreferenceRater

    path = tmp_path / "ratings.jsonl"
    rater = PreferenceRater(_items(3), path, seed=1)
    shown = [rater.shown()]
    first = rater.rate("a")  # what the "A is better" button does
    shown.append(rater.shown())
    rater.buttons["tie"].click()  # a real button click, through ipywidgets' callback
    rater.rate("skip")
    records = preferences.read_ratings(path)
    assert [r["choice"] for r in records] == ["a", "tie", "skip"]
    assert [(r["a"], r["b"]) for r in records[:2]] == shown  # A is the left reply as shown
    item = _items(1)[0]
    assert first["corpus_prefers"] == ("a" if first["a"] == item.first else "b")  # the order is recorded
    assert "All 3 pairs rated" in rater.said.value and rater.buttons["a"].disabled
    assert rater.rate("a") is None  # nothing left to rate, nothing written
    assert len(path.read_text().splitlines()) == 3


def test_rater_shows_both_orders_so_position_says_nothing(tmp_path):
    from camp.widgets import PreferenceRater

    rater = PreferenceRater(_items(20), tmp_path / "r.jsonl", seed=0)
    assert 0 < sum(rater.flipped) < 20


def test_rater_on_a_full_disk_shows_the_error_and_keeps_the_pair(tmp_path, monkeypatch):
    from camp import preferences
    from camp.widgets import PreferenceRater

    path = tmp_path / "ratings.jsonl"
    rater = PreferenceRater(_items(3), path, seed=1)
    rater.rate("a")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(preferences, "atomic_write_bytes", disk_full)
    assert rater.rate("b") is None
    assert "No space left on device" in rater.status.value and rater.index == 1  # the pair stays on screen
    monkeypatch.undo()
    assert rater.rate("b")["choice"] == "b"  # space freed: the same pair is rated
    assert [r["choice"] for r in preferences.read_ratings(path)] == ["a", "b"]


def test_rater_refuses_nothing_to_rate(tmp_path):
    from camp.widgets import PreferenceRater

    with pytest.raises(ValueError, match="nothing to rate"):
        PreferenceRater([], tmp_path / "r.jsonl")


# ---------------------------------------------------------------------------------------------------- side by side
def test_side_by_side_replies_with_each_policy_and_leaves_the_policy_as_it_was(fresh_policy):
    import torch

    from camp import judge, utils
    from camp.lm import chat_prompts
    from camp.widgets import SideBySide

    policy = fresh_policy()
    untrained = policy.adapter_state()
    nudged = {k: (v + 0.05 * torch.randn_like(v) if "lora_B" in k else v) for k, v in untrained.items()}
    view = SideBySide(policy, {"reference": None, "nudged": nudged},
                      scorer=lambda replies, people: np.array([float(len(r)) for r in replies]), seed=3)
    rows = view.send("My sister moved abroad today and the house feels empty.", "sadness")
    assert [r["policy"] for r in rows] == ["reference", "nudged"]
    utils.set_seed(3)
    with policy.reference():
        alone = policy.generate(chat_prompts(policy.tokenizer, ["My sister moved abroad today and the house "
                                                                 "feels empty."]), temperature=0.7)["texts"][0]
    assert rows[0]["reply"] == alone  # the same seed for each policy: the reference's reply is reproducible
    assert rows[1]["reply"] != rows[0]["reply"]  # the nudged adapters were really swapped in
    assert rows[0]["score"] == len(rows[0]["reply"])
    assert rows[1]["judge"] == pytest.approx(judge.attunement([rows[1]["reply"] or "..."], ["sadness"])[0])
    assert all(torch.equal(v, untrained[k]) for k, v in policy.adapter_state().items())  # put back as it came
    assert "nudged" in view.table.value and html.escape(rows[1]["reply"]) in view.table.value
    assert view.send("   ", "sadness") == [] and "Type what the person says" in view.table.value
    with pytest.raises(ValueError, match="nothing to compare"):
        SideBySide(policy, {})
    with pytest.raises(ValueError, match="lacks"):
        policy.load_adapter_state({k: v for k, v in untrained.items() if "lora_A" in k})
