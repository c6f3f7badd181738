"""Graded exercises refuse a submission that calls camp's (or scikit-learn's) own implementation instead of the
learner's. Each test runs the exercise's test cell, visible and hidden parts, from the solution notebook, first
with the reference answer (it passes), then with a cheat (it must fail). For every exercise with a camp or library
equivalent, the cheat that answers the visible tests' inputs by hand and borrows camp's function for all other
inputs must fail too (issue 31)."""

import ast
import contextlib
import re

import nbformat
import pytest
from conftest import ROOT

from camp.course import grading

HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", re.S)  # what nbgrader strips


def _cells(lesson: str) -> dict[str, str]:
    nb = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", 4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")}


def _reference(cells: dict[str, str], names: dict, exercise: str) -> dict:
    """Run the exercise's reference answer and its test cell (visible and hidden parts) in a copy of `names`;
    the reference must pass. Returns the namespace, holding the reference answer."""
    honest = dict(names)
    exec(cells[exercise], honest)
    exec(cells[f"{exercise}_tests"], honest)
    return honest


def test_macro_f1_must_be_written_from_scratch():
    cells = _cells("02_emotion_classifier")
    _reference(cells, {}, "macro_f1")

    import camp.metrics

    def cheat(y_true, y_pred, num_classes):
        return camp.metrics.classification_metrics(y_true, y_pred, num_classes)["macro_f1"]

    with pytest.raises(AssertionError, match="write it from scratch"):
        exec(cells["macro_f1_tests"], {"macro_f1": cheat})


def _lesson_07() -> tuple[dict, dict]:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from camp import dpo, preferences, rl

    return _cells("07_learning_from_preferences"), {"np": np, "torch": torch, "F": F, "preferences": preferences,
                                                     "dpo": dpo, "rl": rl}


def test_bradley_terry_loss_must_be_written_from_scratch():
    cells, names = _lesson_07()
    _reference(cells, names, "bt_loss")
    cheat = {**names, "my_bt_loss": lambda c, r: names["preferences"].bradley_terry_loss(c, r)}
    with pytest.raises(AssertionError, match="write it yourself"):
        exec(cells["bt_loss_tests"], cheat)
    naive = {**names, "my_bt_loss": lambda c, r: -names["torch"].log(names["torch"].sigmoid(c - r)).mean()}
    with pytest.raises(AssertionError):  # log(sigmoid(-100)) underflows: the stability test catches it
        exec(cells["bt_loss_tests"], naive)


def test_pairwise_accuracy_must_be_written_from_scratch():
    cells, names = _lesson_07()
    _reference(cells, names, "pairwise_accuracy")
    preferences, np = names["preferences"], names["np"]

    def untie(c, r, tol):  # scores within tol become exact ties, so camp's function does the rest
        c, r = np.asarray(c, dtype=float), np.asarray(r, dtype=float)
        return np.where(np.abs(c - r) <= tol, r, c), r

    for cheat in (lambda c, r, tol=0.0: preferences.pairwise_accuracy(*untie(c, r, tol)),
                  lambda c, r, tol=0.0: float(preferences.agreement(*untie(c, r, tol)).mean())):
        with pytest.raises(AssertionError, match="write it yourself"):
            exec(cells["pairwise_accuracy_tests"], {**names, "my_pairwise_accuracy": cheat})
    no_tol = {**names, "my_pairwise_accuracy": lambda c, r, tol=0.0: float(
        (names["np"].asarray(c, float) > names["np"].asarray(r, float)).mean())}  # ignores ties: fails by hand
    with pytest.raises(AssertionError):
        exec(cells["pairwise_accuracy_tests"], no_tol)


def test_strengths_must_be_fitted_not_borrowed():
    cells, names = _lesson_07()
    _reference(cells, names, "strengths")
    cheat = {**names, "my_strengths": lambda w, lo, n, l2=0.05: names["preferences"].fit_strengths(w, lo, n, l2)}
    with pytest.raises(AssertionError, match="write it yourself"):
        exec(cells["strengths_tests"], cheat)

    def win_counts(w, lo, n, l2=0.05):  # a plausible shortcut: wins minus losses, centred; right order, wrong values
        torch = names["torch"]
        s = torch.bincount(torch.tensor(w), minlength=n) - torch.bincount(torch.tensor(lo), minlength=n)
        return (s - s.float().mean()).double()

    with pytest.raises(AssertionError):
        exec(cells["strengths_tests"], {**names, "my_strengths": win_counts})


def test_dpo_loss_must_be_written_not_borrowed():
    cells, names = _lesson_07()
    _reference(cells, names, "dpo_loss")
    dpo, preferences, torch = names["dpo"], names["preferences"], names["torch"]
    for cheat in (lambda pc, pr, rc, rr, beta: dpo.dpo_loss(pc, pr, rc, rr, beta),
                  lambda pc, pr, rc, rr, beta: preferences.bradley_terry_loss(beta * (pc - rc), beta * (pr - rr))):
        with pytest.raises(AssertionError, match="write it yourself"):
            exec(cells["dpo_loss_tests"], {**names, "my_dpo_loss": cheat})

    def naive(pc, pr, rc, rr, beta):  # log(sigmoid(.)) underflows for a large margin: the hidden test catches it
        return -torch.log(torch.sigmoid(beta * ((pc - rc) - (pr - rr)))).mean()

    with pytest.raises(AssertionError):
        exec(cells["dpo_loss_tests"], {**names, "my_dpo_loss": naive})


def test_on_policy_pairs_must_be_chosen_not_borrowed():
    cells, names = _lesson_07()
    _reference(cells, names, "best_worst")
    dpo, np = names["dpo"], names["np"]
    with pytest.raises(AssertionError, match="write it yourself"):
        exec(cells["best_worst_tests"], {**names, "my_best_worst": lambda s, k, min_margin=0.0: dpo.best_worst_pairs(s, k, min_margin)})

    def no_margin(scores, k, min_margin=0.0):  # ignores ties and the margin: fails on the visible example
        groups = np.asarray(scores, dtype=float).reshape(-1, k)
        return [(g * k + int(row.argmax()), g * k + int(row.argmin())) for g, row in enumerate(groups)]

    with pytest.raises(AssertionError):
        exec(cells["best_worst_tests"], {**names, "my_best_worst": no_margin})

    def last_of_ties(scores, k, min_margin=0.0):  # a stable argsort: the last of tied best replies
        groups = np.asarray(scores, dtype=float).reshape(-1, k)
        pairs = [(g * k + int(row.argsort(kind="stable")[-1]), g * k + int(row.argsort(kind="stable")[0]))
                 for g, row in enumerate(groups)]
        return [(b, w) for b, w in pairs if scores[b] - scores[w] > min_margin]

    # the exercise's docstring states the tie rule, and a visible test shows it
    assert "first index of the highest score" in cells["best_worst"]
    with pytest.raises(AssertionError, match="among tied replies the first is taken"):
        exec(HIDDEN.sub("", cells["best_worst_tests"]), {**names, "my_best_worst": last_of_ties})


def test_rloo_advantages_must_be_written_not_borrowed():
    cells, names = _lesson_07()
    _reference(cells, names, "rloo_advantages")
    rl = names["rl"]
    def via_grpo(r, k):  # GRPO's advantage times the group's std is r - mean; times k / (k - 1) it is RLOO's
        return rl.group_normalise(r, k) * r.reshape(-1, k).std(1).repeat_interleave(k) * k / (k - 1)

    for cheat in (lambda r, k: rl.leave_one_out(r, k), via_grpo):
        with pytest.raises(AssertionError, match="write it yourself"):
            exec(cells["rloo_advantages_tests"], {**names, "my_rloo_advantages": cheat})
    for wrong in (lambda r, k: r - r.mean(),  # one baseline for everyone: the person's difficulty stays in
                  lambda r, k: (r.reshape(-1, k) - r.reshape(-1, k).mean(1, keepdim=True)).reshape(-1)):  # keeps self
        with pytest.raises(AssertionError):
            exec(cells["rloo_advantages_tests"], {**names, "my_rloo_advantages": wrong})


def _article_names() -> dict:
    import torch
    from torch.utils.data import DataLoader, Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from camp import data, models

    path = models.resolve_encoder_name("auto")
    return {"torch": torch, "DataLoader": DataLoader, "Dataset": Dataset, "models": models, "path": path,
            "AutoModelForSequenceClassification": AutoModelForSequenceClassification,
            "tokenizer": AutoTokenizer.from_pretrained(path), "names": list(data.EMOTIONS)}


def test_the_article_repair_must_be_written_not_borrowed():
    cells, names = _cells("02_emotion_classifier"), _article_names()
    honest = _reference(cells, names, "article_code")
    models = names["models"]

    def borrowed_model(path):  # camp's loader builds the right head: the test must refuse it
        return models.load_encoder(path)[0]

    with pytest.raises(AssertionError, match=r"build the model and write the loop yourself \(the tests refuse "
                                             r"camp.models.load_encoder\)"):
        exec(cells["article_code_tests"], {**honest, "article_model": borrowed_model})

    import camp.metrics

    def borrowed_evaluate(model, dataset, batch_size=16):
        texts = list(dataset.texts)
        probs = camp.metrics.predict_proba(model, names["tokenizer"], texts)
        return [int(p.argmax()) for p in probs], [int(y) for y in dataset.labels]

    with pytest.raises(AssertionError, match=r"write the loop yourself \(the tests refuse camp.metrics.predict_proba\)"):
        exec(cells["article_code_tests"], {**honest, "article_evaluate": borrowed_evaluate})

    class AsTheArticle(honest["ArticleDataset"]):  # the article's label: torch.tensor([label]), shape (1,)
        def __getitem__(self, item):
            return {**super().__getitem__(item), "labels": names["torch"].tensor([self.labels[item]])}

    with pytest.raises(AssertionError, match="0-d tensor"):
        exec(cells["article_code_tests"], {**honest, "ArticleDataset": AsTheArticle})

    def two_way(path):  # the article's model: no num_labels, so a 2-way head
        return names["AutoModelForSequenceClassification"].from_pretrained(path)

    with pytest.raises(AssertionError, match="expected 6, got 2"):
        exec(cells["article_code_tests"], {**honest, "article_model": two_way})


def _lesson_03() -> tuple[dict, dict]:
    import numpy as np

    from camp import data, policies
    from camp.listener import Listener

    pool = list(data.load_emotions("offline", verbose=False)["train"]["text"])
    return _cells("03_empathy_environment"), {"np": np, "data": data, "policies": policies, "pool": pool,
                                              "listener": Listener.default()}


@pytest.mark.slow  # the full tier: lesson 03's listener over many episodes takes minutes
def test_the_scripted_policy_must_not_borrow_camps_or_peek_at_people():
    cells, names = _lesson_03()
    _reference(cells, names, "my_policy")
    policies, listener = names["policies"], names["listener"]
    cheats = {"write it yourself": (lambda said, people: policies.reflective(listener.classify)(said, people),
                                    lambda said, people: policies.oracle(said, people)),
              "it may read only the utterances": (  # the true emotion, in the person's own template
                  lambda said, people: [f"You feel {p.emotion}. Tell me more about it." for p in people],)}
    for message, submissions in cheats.items():
        for cheat in submissions:
            with pytest.raises(AssertionError, match=message):
                exec(cells["my_policy_tests"], {**names, "my_policy": cheat})


def test_a_refusal_holds_however_the_function_was_imported():
    # `from camp.rewards import distinct_n` before the test walked past mock.patch.object; refused() stops it.
    from camp import rewards

    cells = _cells("04_reward_design")
    _reference(cells, {"rewards": rewards}, "distinct_n")
    cheat: dict = {"rewards": rewards}
    # camp's distinct_n rounds to 3 decimals, which the hand-computed asserts would catch; this cheat answers
    # those by hand and borrows only inside the refused block, so the refusal is what must stop it
    exec("from camp.rewards import distinct_n\n\n"
         "def my_distinct_n(text, n):\n"
         "    if text == 'a b a b':\n"
         "        return distinct_n([text], n)[0]\n"
         "    grams = [tuple(text.split()[i:i + n]) for i in range(len(text.split()) - n + 1)]\n"
         "    return len(set(grams)) / len(grams) if grams else 0.0\n", cheat)
    with pytest.raises(AssertionError, match="write it yourself"):
        exec(cells["distinct_n_tests"], cheat)


def test_the_guard_must_be_written_not_borrowed():
    from camp import data, safety

    cells, names = _cells("08_evaluation_and_responsible_use"), {"safety": safety, "data": data}
    _reference(cells, names, "guard")
    for cheat in (lambda said, reply: safety.guard(said, reply).reply,
                  lambda said, reply: safety.SafeResponder(lambda u: [reply] * len(u))([said])[0]):
        with pytest.raises(AssertionError, match="write the rules yourself"):
            exec(cells["guard_tests"], {**names, "my_guard": cheat})


def test_the_logprob_shift_must_be_written_not_borrowed():
    import math

    import torch

    from camp import lm

    cells, names = _cells("06_rl_fine_tuning"), {"torch": torch, "lm": lm, "math": math}
    _reference(cells, names, "response_logprobs")

    def borrowed(logits, ids, mask, temperature=1.0):  # camp's function wants a model: hand it one that returns logits
        q = logits.shape[1] - ids.shape[1]
        batch = {"query_ids": torch.zeros(ids.shape[0], q, dtype=torch.long), "query_mask": torch.ones(ids.shape[0], q),
                 "response_ids": ids, "response_mask": mask}
        return lm.response_logprobs(lambda i, m, logits_to_keep: (logits[:, -logits_to_keep:], logits[..., 0]),
                                    batch, temperature)[0] * mask

    def off_by_one(logits, ids, mask, temperature=1.0):  # the classic bug: each token read off its own position
        lp = torch.log_softmax(logits[:, -ids.shape[1]:] / temperature, -1)
        return lp.gather(-1, ids.unsqueeze(-1)).squeeze(-1) * mask

    with pytest.raises(AssertionError, match="write it yourself"):
        exec(cells["response_logprobs_tests"], {**names, "my_response_logprobs": borrowed})
    with pytest.raises(AssertionError, match="predicted by position Q"):
        exec(cells["response_logprobs_tests"], {**names, "my_response_logprobs": off_by_one})


def test_the_ppo_update_must_use_the_learners_pieces():
    import math

    import numpy as np
    import torch

    from camp import data, models, ppo, rl

    cells = _cells("05_policy_gradients")
    emotions = data.load_emotions("offline", verbose=False)
    names = {"torch": torch, "np": np, "math": math, "ppo": ppo, "rl": rl,
             "train_x": models.cached_embed(list(emotions["train"]["text"][:64]))}
    honest = _reference(cells, {**names, **_reference(cells, names, "ppo_clip")}, "ppo_update")

    def borrowed(policy, optimizer, obs, actions, old, adv, returns, epochs=4, minibatches=4, clip_range=0.2,
                 vf_coef=0.5, ent_coef=0.01, max_grad_norm=0.5):  # camp's pieces in the right order
        for _ in range(epochs):
            for idx in torch.randperm(len(obs)).chunk(minibatches):
                logits, values = policy(obs[idx])
                lp = torch.log_softmax(logits, -1).gather(1, actions[idx, None]).squeeze(1)
                loss, _ = rl.ppo_clip_loss(lp, old[idx], rl.whiten(adv[idx]), clip_range)
                optimizer.zero_grad()
                (loss + vf_coef * rl.value_loss(values, returns[idx]) - ent_coef * rl.entropy(logits)).backward()
                optimizer.step()
        return {"approx_kl": 0.0, "clipfrac": 0.0, "entropy": 1.0}

    def one_pass(policy, optimizer, obs, actions, old, adv, returns, epochs=4, minibatches=4, **kwargs):
        return honest["my_ppo_update"](policy, optimizer, obs, actions, old, adv, returns, 1, 1, **kwargs)

    with pytest.raises(AssertionError, match="write it yourself"):
        exec(cells["ppo_update_tests"], {**names, "my_ppo_clip_loss": honest["my_ppo_clip_loss"],
                                         "my_ppo_update": borrowed})
    with pytest.raises(AssertionError, match="12 optimizer steps"):
        exec(cells["ppo_update_tests"], {**names, "my_ppo_clip_loss": honest["my_ppo_clip_loss"],
                                         "my_ppo_update": one_pass})


# ---- the cheat that answers the visible tests by hand and borrows for everything else (issue 31) ---------------
#
# Reading the visible tests, a learner knows which inputs they use. The cheat below answers exactly those inputs
# the way a hand-written answer would (it asks the reference answer), and calls camp's (or a library's) own
# function for every other input. Each exercise's whole test cell, visible and hidden parts, must stop it, and
# it must be the refusal that does: the same cheat passes the visible part alone, and passes everything once
# `refusing` is switched off (so the borrowed function really computes the answer).


def _key(value):
    """A hashable picture of a value, so that inputs are looked up by what they hold, not by identity."""
    import numpy as np
    import pandas as pd
    import torch

    if isinstance(value, torch.Tensor):
        return "tensor", str(value.dtype), tuple(value.shape), tuple(value.detach().flatten().tolist())
    if isinstance(value, np.ndarray):
        return "array", str(value.dtype), value.shape, tuple(value.ravel().tolist())
    if isinstance(value, pd.DataFrame):
        return "frame", value.to_json()
    if isinstance(value, list | tuple):
        return type(value).__name__, tuple(_key(v) for v in value)
    if isinstance(value, dict):
        return "dict", tuple((k, _key(v)) for k, v in value.items())
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return "object", type(value).__name__  # a model, an optimizer, a stand-in person: told apart by the rest


def _learner(cells: dict[str, str], exercise: str) -> str:
    """The one function (or class) the exercise's solution cell defines."""
    (name,) = [n.name for n in ast.parse(cells[exercise]).body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    return name


def _lookup_cheat(cells: dict[str, str], names: dict, exercise: str, borrowed, learner: str | None = None):
    """(the reference's namespace, the cheat): the visible tests are run once with the reference answer wrapped
    in a recorder; the cheat answers the recorded inputs as the reference does and hands any other to `borrowed`."""
    learner = learner or _learner(cells, exercise)
    honest = _reference(cells, names, exercise)
    reference, seen = honest[learner], set()

    def recorder(*args, **kwargs):
        seen.add(_key((args, kwargs)))
        return reference(*args, **kwargs)

    exec(HIDDEN.sub("", cells[f"{exercise}_tests"]), {**honest, learner: recorder})
    assert seen, f"the visible tests of {exercise} never call {learner}"

    def cheat(*args, **kwargs):
        if _key((args, kwargs)) in seen:
            return reference(*args, **kwargs)  # answered by hand: these inputs are in plain sight
        return borrowed(*args, **kwargs)

    return honest, cheat


def _stopped_by_the_refusal(cells: dict[str, str], namespace: dict, exercise: str, cheat, learner: str | None = None,
                            visible_passes: bool = True, unrefused_passes: bool = True) -> None:
    """The cheat passes the visible part (if it answers those by hand), fails the whole cell on a refusal, and
    passes it without refusals."""
    learner, test = learner or _learner(cells, exercise), cells[f"{exercise}_tests"]
    submitted, rest = {**namespace, learner: cheat}, test
    if visible_passes:  # the whole cell, run as its visible part (which passes) and then its hidden part
        visible, marker, rest = test.partition("### BEGIN HIDDEN TESTS\n")
        assert marker and rest.rstrip().endswith("### END HIDDEN TESTS"), "the hidden tests must end the cell"
        exec(visible, submitted)
    with pytest.raises(AssertionError, match=r"\(the tests refuse [\w.]+\)"):
        exec(rest, submitted)
    if unrefused_passes:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(grading, "refusing", lambda *exercises, **kwargs: contextlib.nullcontext())
            exec(test, {**namespace, learner: cheat})


def _names() -> dict:
    """The modules that the lessons' earlier cells import and their exercises and test cells use."""
    import math

    import numpy as np
    import pandas as pd
    import torch
    import torch.nn.functional as F

    from camp import audit, data, dpo, env, evaluate, lm, ppo, preferences, rewards, rl, rlhf, safety

    return {"np": np, "pd": pd, "torch": torch, "F": F, "math": math, "audit": audit, "data": data, "dpo": dpo,
            "env": env, "evaluate": evaluate, "lm": lm, "ppo": ppo, "preferences": preferences, "rewards": rewards,
            "rl": rl, "rlhf": rlhf, "safety": safety}


def _borrowed(exercise: str, ns: dict):
    """Camp's (or a library's) own function for `exercise`, in the exercise's signature: what the cheat hands
    every input it has not seen. Checks of bad input that camp does not make are written by hand."""
    import camp.metrics

    F, rl, rewards, preferences, dpo = (ns[k] for k in ("F", "rl", "rewards", "preferences", "dpo"))
    return {
        "discounted_return": _borrowed_discounted_return, "class_weights": _borrowed_class_weights,
        "token_length_summary": _borrowed_length_summary, "stratified_split": _borrowed_split,
        "weighted_cross_entropy": lambda z, y, w: F.cross_entropy(z, y, weight=w),
        "macro_f1": lambda t, p, k: camp.metrics.classification_metrics(t, p, k)["macro_f1"],
        "transition_rule": _borrowed_transition, "episode_end": _borrowed_episode_end,
        "distinct_n": lambda text, n: rewards.distinct_n([text], n)[0],
        "shaping": lambda before, after, gamma, done: rewards.potential_shaping(before, after, gamma, done),
        "combine": _borrowed_combine,
        "reinforce": lambda lp, w, mask=None: rl.reinforce_loss(lp, w, mask),
        "gae": lambda r, v, gamma, lam, d, last: rl.compute_gae(r, v, gamma, lam, d, last),
        "ppo_clip": lambda lp, old, adv, eps: rl.ppo_clip_loss(lp, old, adv, eps)[0],
        "kl_rewards": lambda s, lp, ref, m, beta: rl.penalised_rewards(s, rl.kl_penalty(lp, ref), m, beta),
        "adaptive_kl": _borrowed_adaptive_beta, "masked_whiten": lambda x, m: rl.whiten(x, m),
        "response_logprobs": _borrowed_logprobs,
        "bt_loss": lambda c, r: preferences.bradley_terry_loss(c, r), "pairwise_accuracy": _borrowed_accuracy,
        "strengths": lambda w, lo, n, l2=0.05: preferences.fit_strengths(w, lo, n, l2),
        "dpo_loss": lambda pc, pr, rc, rr, beta: dpo.dpo_loss(pc, pr, rc, rr, beta),
        "best_worst": lambda s, k, min_margin=0.0: dpo.best_worst_pairs(s, k, min_margin),
        "rloo_advantages": lambda r, k: rl.leave_one_out(r, k), "win_rate": _borrowed_win_rate,
        "guard": lambda said, reply: ns["safety"].guard(said, reply).reply, "group_gap": _borrowed_group_gap,
    }[exercise]


def _borrowed_discounted_return(rs, gamma):
    import torch

    from camp import rl

    if not 0.0 <= gamma <= 1.0:
        raise ValueError(gamma)
    return rl.discounted_returns(torch.tensor(rs, dtype=torch.float64), gamma)[0].item() if rs else 0.0


def _borrowed_class_weights(labels, num_classes):
    import numpy as np
    import torch
    from sklearn.utils.class_weight import compute_class_weight

    weights = compute_class_weight("balanced", classes=np.arange(num_classes), y=labels)
    return torch.tensor(weights, dtype=torch.float32)


def _borrowed_length_summary(lengths, max_length):
    import numpy as np
    import pandas as pd

    if not len(lengths):
        raise ValueError("empty")
    d = pd.Series(lengths, dtype=float).describe(percentiles=[0.5, 0.95])
    return {"mean": d["mean"], "median": d["50%"], "p95": d["95%"], "max": d["max"],
            "truncated": float(np.mean(np.asarray(lengths) > max_length))}


def _borrowed_split(labels, test_fraction, seed):
    import numpy as np
    from sklearn.model_selection import train_test_split

    labels, test = np.asarray(labels), []
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        test += train_test_split(members, test_size=round(len(members) * test_fraction), random_state=seed)[1].tolist()
    return [i for i in range(len(labels)) if i not in set(test)], sorted(test)


def _borrowed_transition(intensity, valence, understood, dismissive):
    """The environment's rule gives d and the intensity after an undismissive reply; the rest is by hand."""
    import numpy as np

    from camp import env

    n = len(intensity)
    state = {"probs": np.full((n, 6), 1 / 6), "intensity": intensity, "understood": np.zeros(n),
             "negative": np.ones(n, dtype=bool)}
    signals = {k: understood for k in ("recognition", "relevance", "tone")} | {"dismissive": np.zeros(n)}
    new, d = env.transition(state, signals)
    return (np.where(dismissive > 0, np.clip(intensity + 0.25, 0.05, 1.0), new["intensity"]),
            np.clip(np.where(dismissive > 0, valence - 0.2, valence + 0.5 * d), -1.0, 1.0))


def _borrowed_episode_end(valence, understood, negative, turn, max_turns):
    import numpy as np

    from camp import env

    done = env.feels_better({"valence": valence, "understood": understood, "negative": negative})
    return done, np.full(len(valence), turn >= max_turns) & ~done


def _borrowed_combine(breakdown, weights):
    from camp import rewards

    n = len(next(iter(breakdown.values()))) if breakdown else 0
    spec = rewards.RewardSpec({k: ((lambda replies, v=v: v), weights[k]) for k, v in breakdown.items()})
    return spec(["."] * n)[0]


def _borrowed_adaptive_beta(beta, current_kl, target, n_steps, horizon):
    from camp import rl

    controller = rl.AdaptiveKLController(beta, target, horizon)
    controller.update(current_kl, n_steps)
    return controller.value


def _borrowed_accuracy(chosen, rejected, tol=0.0):
    import numpy as np

    from camp import preferences

    c, r = np.asarray(chosen, dtype=float).ravel(), np.asarray(rejected, dtype=float).ravel()
    if c.size == 0:
        raise ValueError("empty")
    return preferences.pairwise_accuracy(np.where(np.abs(c - r) <= tol, r, c), r)  # within tol: a tie


def _borrowed_win_rate(a, b):
    import numpy as np

    from camp import preferences

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0 or a.shape != b.shape:
        raise ValueError("need two equal, non-empty lists")
    return preferences.pairwise_accuracy(a, b)


def _borrowed_group_gap(table, by, value):
    import pandas as pd

    from camp import audit

    twice = pd.concat([table.assign(template=0), table.assign(template=1)])  # two alike templates: no spread
    means = audit.group_gap(twice, by, value)["means"]  # lowest first
    return means.index[0], means.index[-1], float(means.iloc[-1] - means.iloc[0])


def _borrowed_logprobs(logits, ids, mask, temperature=1.0):
    """camp's response_logprobs wants a model: hand it one that returns the given logits."""
    import torch

    from camp import lm

    q = logits.shape[1] - ids.shape[1]
    batch = {"query_ids": torch.zeros(ids.shape[0], q, dtype=torch.long), "query_mask": torch.ones(ids.shape[0], q),
             "response_ids": ids, "response_mask": mask}
    return lm.response_logprobs(lambda i, m, logits_to_keep: (logits[:, -logits_to_keep:], logits[..., 0]),
                                batch, temperature)[0] * mask


LIGHT = {"00_welcome": ["discounted_return"],
         "01_emotion_data": ["class_weights", "token_length_summary", "stratified_split"],
         "02_emotion_classifier": ["weighted_cross_entropy", "macro_f1"],
         "03_empathy_environment": ["transition_rule", "episode_end"],
         "04_reward_design": ["distinct_n", "shaping", "combine"],
         "05_policy_gradients": ["reinforce", "gae", "ppo_clip"],
         "06_rl_fine_tuning": ["kl_rewards", "adaptive_kl", "masked_whiten", "response_logprobs"],
         "07_learning_from_preferences": ["bt_loss", "pairwise_accuracy", "strengths", "dpo_loss", "best_worst",
                                          "rloo_advantages"],
         "08_evaluation_and_responsible_use": ["win_rate", "guard", "group_gap"]}
# The rest need heavy objects and have tests of their own below: predict_emotions (a model), article_code,
# my_policy and ppo_update (slow). model_card is a written answer: nothing to borrow.


@pytest.mark.parametrize(("lesson", "exercise"), [(k, e) for k, v in LIGHT.items() for e in v],
                         ids=[e for v in LIGHT.values() for e in v])
def test_answering_the_visible_tests_by_hand_and_borrowing_the_rest_fails(lesson, exercise):
    cells, names = _cells(lesson), _names()
    honest, cheat = _lookup_cheat(cells, names, exercise, _borrowed(exercise, names))
    _stopped_by_the_refusal(cells, honest, exercise, cheat)


def test_the_bradley_terry_loss_cannot_be_borrowed_from_dpo():
    cells, names = _lesson_07()
    honest = _reference(cells, names, "bt_loss")
    dpo = names["dpo"]
    # DPO's loss with zero reference log-probs and beta = 1 is the Bradley-Terry loss of the two scores
    _stopped_by_the_refusal(cells, honest, "bt_loss", lambda c, r: dpo.dpo_loss(c, r, 0 * c, 0 * r, 1.0),
                            visible_passes=False)


def test_the_issues_pairwise_accuracy_cheat_fails():
    cells, names = _lesson_07()
    honest = _reference(cells, names, "pairwise_accuracy")
    cheat: dict = {}
    exec("def my_pairwise_accuracy(chosen, rejected, tol=0.0):\n"
         "    import numpy, camp.preferences\n"
         "    c = numpy.asarray(chosen, dtype=float).ravel(); r = numpy.asarray(rejected, dtype=float).ravel()\n"
         "    if c.tolist() == [1.0] and r.tolist() == [0.0]:  # the one call the old test made inside refused()\n"
         "        return 1.0\n"
         "    c = numpy.where(numpy.abs(c - r) <= tol, r, c)\n"
         "    return float(camp.preferences.agreement(c, r).mean())\n", cheat)
    with pytest.raises(AssertionError, match=r"the tests refuse camp.preferences.agreement"):
        exec(cells["pairwise_accuracy_tests"], {**honest, **cheat})


@pytest.mark.parametrize("how", ["pairwise_accuracy", "agreement", "evaluate.compare"])
def test_the_win_rate_cannot_be_borrowed_from_lesson_07(how):
    cells, ns = _cells("08_evaluation_and_responsible_use"), _names()
    honest = _reference(cells, ns, "win_rate")
    np, preferences = ns["np"], ns["preferences"]

    def borrowed(a, b):
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if a.size == 0 or a.shape != b.shape:
            raise ValueError("need two equal, non-empty lists")
        if how == "evaluate.compare" and a.size == 1:  # its bootstrap needs two pairs: one is done by hand
            return float(a[0] > b[0]) + 0.5 * float(a[0] == b[0])
        if how == "evaluate.compare":  # the judge's win rate of `after` over `before`
            return ns["evaluate"].compare({"scores": b, "judge_scores": b}, {"scores": a, "judge_scores": a})[
                "judge_win_rate"]
        return preferences.pairwise_accuracy(a, b) if how == "pairwise_accuracy" else float(
            preferences.agreement(a, b).mean())

    with pytest.raises(AssertionError, match=r"the tests refuse camp\.(preferences|evaluate)\."):
        exec(cells["win_rate_tests"], {**honest, "my_win_rate": borrowed})
    with pytest.MonkeyPatch.context() as patch:  # without the refusal it passes: it is a real stand-in
        patch.setattr(grading, "refusing", lambda *exercises, **kwargs: contextlib.nullcontext())
        exec(cells["win_rate_tests"], {**honest, "my_win_rate": borrowed})


def test_predicting_the_visible_texts_by_hand_and_borrowing_the_rest_fails():
    # Lesson 02's `model` is the classifier fine-tuned there (minutes of training). A stand-in does as well: MiniLM
    # with a fresh, seeded head; camp.metrics.predict then agrees with the reference answer on any model.
    import torch

    import camp.metrics
    from camp import data, models

    torch.manual_seed(0)
    model, tokenizer = models.load_encoder("auto")
    cells = _cells("02_emotion_classifier")
    names = {"model": model, "tokenizer": tokenizer, "emotions": data.load_emotions("offline", verbose=False)}
    honest, cheat = _lookup_cheat(cells, names, "predict_emotions", lambda texts, model, tokenizer, batch_size=32:
                                  camp.metrics.predict(model, tokenizer, texts, batch_size)[0])
    _stopped_by_the_refusal(cells, honest, "predict_emotions", cheat)


def test_evaluating_the_visible_dataset_by_hand_and_borrowing_the_rest_fails():
    # article_model is called once, on the one encoder there is offline, in the visible part: answering it by hand
    # cannot be caught, and test_the_article_repair_must_be_written_not_borrowed refuses borrowing it outright.
    # Borrowed, the evaluation loop fails on the hidden stand-in model (no config) with or without the refusal, so
    # the check without refusals is left out; the refusal is what the test must fail on.
    import camp.metrics

    cells, names = _cells("02_emotion_classifier"), _article_names()

    def borrowed(model, dataset, batch_size=16):
        probs = camp.metrics.predict_proba(model, names["tokenizer"], list(dataset.texts))
        return [int(p.argmax()) for p in probs], [int(y) for y in dataset.labels]

    honest, cheat = _lookup_cheat(cells, names, "article_code", borrowed, learner="article_evaluate")
    _stopped_by_the_refusal(cells, honest, "article_code", cheat, learner="article_evaluate", unrefused_passes=False)


@pytest.mark.slow  # the full tier: lesson 03's listener over many episodes takes minutes
def test_replying_to_the_visible_people_by_hand_and_borrowing_the_rest_fails():
    cells, names = _lesson_03()
    policies, listener = names["policies"], names["listener"]
    honest, cheat = _lookup_cheat(cells, names, "my_policy",
                                  lambda said, people: policies.reflective(listener.classify)(said, people))
    # Run without refusals the same cheat passes (checked when this test was written); that run is left out here,
    # as each run of the cell plays 160 episodes with the listener.
    _stopped_by_the_refusal(cells, honest, "my_policy", cheat, unrefused_passes=False)


def test_updating_the_visible_policy_by_hand_and_borrowing_the_rest_fails():
    import math

    import numpy as np
    import torch

    from camp import data, models, ppo, rl

    cells = _cells("05_policy_gradients")
    emotions = data.load_emotions("offline", verbose=False)
    names = {"torch": torch, "np": np, "math": math, "ppo": ppo, "rl": rl,
             "train_x": models.cached_embed(list(emotions["train"]["text"][:64]))}
    names = {**names, **_reference(cells, names, "ppo_clip")}

    def borrowed(policy, optimizer, obs, actions, old, adv, returns, epochs=4, minibatches=4, clip_range=0.2,
                 vf_coef=0.5, ent_coef=0.01, max_grad_norm=0.5):  # camp's pieces in the right order
        stats = {"approx_kl": [], "clipfrac": [], "entropy": []}
        for _ in range(epochs):
            for idx in torch.randperm(len(obs)).chunk(minibatches):
                logits, values = policy(obs[idx])
                lp = torch.log_softmax(logits, -1).gather(1, actions[idx, None]).squeeze(1)
                loss, clip_stats = rl.ppo_clip_loss(lp, old[idx], rl.whiten(adv[idx]), clip_range)
                ent = rl.entropy(logits)
                optimizer.zero_grad()
                (loss + vf_coef * rl.value_loss(values, returns[idx]) - ent_coef * ent).backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
                optimizer.step()
                for key, value in (*clip_stats.items(), ("entropy", ent.item())):
                    stats[key].append(value)
        return {key: float(np.mean(values)) for key, values in stats.items()}

    honest, cheat = _lookup_cheat(cells, names, "ppo_update", borrowed)
    _stopped_by_the_refusal(cells, honest, "ppo_update", cheat)
