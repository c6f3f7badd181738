"""camp.rewards and camp.text: hand-computed cases, crisis handling, potential-based shaping, the text floor."""

import numpy as np
import pytest

from camp import rewards, safety, text


def test_emotion_logprob_is_the_log_of_the_true_class_probability():
    probs = np.array([[0.1, 0.7, 0.2], [1.0, 0.0, 0.0]])
    got = rewards.emotion_logprob(probs=probs, targets=[1, 2])
    assert got[0] == pytest.approx(np.log(0.7))
    assert got[1] == pytest.approx(np.log(rewards.PROB_FLOOR))  # a zero probability is floored, not -inf


def test_the_environment_floors_log_p_with_the_same_epsilon():
    # One epsilon for log P(Y|X): the env's infer reward is the reward term, not a second copy of it.
    from camp.env import infer_reward

    probs = np.array([[1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0, 0.0, 0.0]])
    assert infer_reward(probs, np.array([1, 1])).tolist() == \
        rewards.emotion_logprob(probs=probs, targets=[1, 1]) == [np.log(1e-6), np.log(0.5)]
    with pytest.raises(ValueError, match="one target each"):
        rewards.emotion_logprob(probs=probs, targets=[1])


def test_distinct_and_repetition_catch_degenerate_replies():
    degenerate = ["i'm so sorry i'm so sorry i'm so sorry"] * 4
    varied = ["that sounds exhausting", "losing him must hurt", "i'm here if you want to talk", "what a week"]
    assert rewards.corpus_distinct_n(degenerate) < 0.2 < 0.9 < rewards.corpus_distinct_n(varied)
    assert rewards.repetition_penalty(degenerate)[0] < -0.5
    assert rewards.repetition_penalty(varied) == [0.0] * 4


@pytest.mark.parametrize("said", ["i want to end it all", "Everyone would be better off without me.",
                                  "sometimes i think about killing myself", "i don't want to wake up tomorrow"])
def test_crisis_statements_reward_only_a_safe_caring_reply(said):
    spec = rewards.RewardSpec(
        {"safety": (rewards.safety, 1.0), "distinct": (rewards.distinct_n, 5.0),
         "length": (rewards.length_penalty, 1.0)},
        context_for={"safety": ("utterances",)})
    replies = ["Cheer up, tomorrow is a new day and you'll feel great after a nice long walk in the sun!",
               "That sounds really hard. Have you tried journaling about it?",
               "I'm really glad you told me, and I care about what happens to you. Please call a crisis line "
               "or someone you trust right now."]
    totals, parts = spec(replies, utterances=[said] * 3)
    assert text.is_crisis(said)
    assert totals[0] < 0 and totals[1] < 0  # high diversity cannot buy a reward for an unsafe reply
    assert totals[2] > 0 and parts["safety"][2] == 0.0


def test_everyday_sadness_is_not_a_crisis():
    for said in ("i could die of embarrassment lol", "my phone died again", "this week is killing me"):
        assert not text.is_crisis(said)


def test_the_text_floor_stands_alone_and_the_old_names_still_work():
    # camp.text is what the listener, the rewards, the environment and the filter share: importing it loads no
    # model and no other camp module, and the listener stands on it without the rewards or the filter.
    import subprocess
    import sys

    code = ("import sys, camp.text; print(sorted(m for m in sys.modules if m.startswith('camp') or m == 'torch'))"
            "; import camp.listener; print('camp.rewards' in sys.modules, 'camp.safety' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["['camp', 'camp.text']", "False False"]
    for name in ("words", "ngrams", "distinct_n", "copied_share", "corpus_distinct_n"):
        assert getattr(rewards, name) is getattr(text, name)  # re-exported: one function, one refusal target
    for name in ("is_crisis", "is_dismissive", "is_cruel", "is_safe_crisis_reply"):
        assert getattr(safety, name) is getattr(text, name)


def test_reward_spec_reports_missing_context_and_bad_lengths():
    spec = rewards.RewardSpec({"safety": (rewards.safety, 1.0)}, context_for={"safety": ("utterances",)})
    with pytest.raises(ValueError, match="needs context \\['utterances'\\]"):
        spec(["hi there"])
    broken = rewards.RewardSpec({"bad": (lambda c: [0.0], 1.0)})
    with pytest.raises(ValueError, match="returned 1 values for 2"):
        broken(["a", "b"])


def _optimal_policy(rewards_sa, transitions, gamma, iters=500):
    """Value iteration on a small deterministic MDP: rewards_sa[s][a], transitions[s][a] -> s' (None = end)."""
    n = len(rewards_sa)
    v = np.zeros(n)
    for _ in range(iters):
        q = np.array([[rewards_sa[s][a] + (gamma * v[transitions[s][a]] if transitions[s][a] is not None else 0)
                       for a in range(len(rewards_sa[s]))] for s in range(n)])
        v = q.max(axis=1)
    return q.argmax(axis=1), q


def test_potential_based_shaping_leaves_the_optimal_policy_unchanged():
    # A 5-state chain: action 0 = "comfort" moves right (reward 0, +10 at the end), action 1 = "quick fix"
    # pays +1 now and ends the episode. The optimum is to comfort all the way.
    gamma, n = 0.9, 5
    r = [[10.0 if s == n - 1 else 0.0, 1.0] for s in range(n)]
    t = [[None if s == n - 1 else s + 1, None] for s in range(n)]
    base_policy, _ = _optimal_policy(r, t, gamma)
    rng = np.random.default_rng(0)
    for _ in range(20):  # any potential: random ones, including ones that tempt the agent
        phi = rng.normal(0, 5, n)
        shaped = [[r[s][a] + rewards.potential_shaping([phi[s]], [phi[t[s][a]] if t[s][a] is not None else 0.0],
                                                       gamma, done=[t[s][a] is None])[0]
                   for a in range(2)] for s in range(n)]
        policy, _ = _optimal_policy(shaped, t, gamma)
        assert (policy == base_policy).all()
    # Shaping that is NOT potential-based (a bonus for the quick fix) does change the optimum.
    hacked = [[r[s][0], r[s][1] + 10] for s in range(n)]
    assert (_optimal_policy(hacked, t, gamma)[0] != base_policy).any()
