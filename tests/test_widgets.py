"""camp.widgets, driven headless: clicks and slider moves through the widgets' own callbacks."""


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
