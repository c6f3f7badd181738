"""Helpers for the graded exercises' test cells (read-only in the lessons, run by nbgrader).

A graded exercise is a function the learner writes; its test cell checks it against camp's own implementation.
Without care a learner could hand in camp's implementation under their own name, or answer the visible tests
by hand and borrow camp's function for everything else. So every call of the learner's code in a test cell, in
the visible and in the hidden part, runs inside `refusing(<exercise>)`, which makes every function listed for
that exercise in `REFUSALS` (camp's own, and library functions such as scikit-learn's `f1_score` that compute
the same thing) raise while the block runs. Expected values are computed before the block starts.

`refused(*functions)` does the work. `unittest.mock.patch.object` only replaces the name in its module: a
learner who wrote `from camp.rewards import distinct_n` at the top of the cell still holds the original
function and walks past the mock. `refused` swaps the code inside the function object itself, so every name
bound to it, however it was imported (`camp.rewards` re-exports `camp.text.distinct_n`: one function), raises.

>>> from camp import rewards
>>> from camp.rewards import distinct_n as borrowed  # imported before the test, under another name
>>> with refused(rewards.distinct_n):
...     borrowed(["a b a b"], 1)
Traceback (most recent call last):
AssertionError: write it yourself (the tests refuse camp.text.distinct_n)
>>> borrowed(["a b a b"], 1)  # back to normal after the block
[0.5]
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# For each graded exercise (its grade_id), the functions that compute what the exercise asks for, or could
# stand in for it, as dotted names. They are imported only when a `refusing` block starts, so importing this
# module stays cheap. A class stands for its own __init__. An empty entry says why nothing is refused.
REFUSALS: dict[str, tuple[str, ...]] = {
    # 00 welcome
    "discounted_return": ("camp.rl.discounted_returns", "camp.rl.compute_gae",  # GAE: zero values, lam = 1
                          "numpy.polyval", "numpy.polynomial.polynomial.polyval"),  # a polynomial in gamma
    # 01 emotion data
    "class_weights": ("sklearn.utils.class_weight.compute_class_weight",
                      "sklearn.utils.class_weight.compute_sample_weight"),
    "token_length_summary": ("pandas.Series.describe", "pandas.DataFrame.describe"),  # mean, 50%, 95%, max
    "stratified_split": ("sklearn.model_selection.train_test_split", "sklearn.model_selection.StratifiedShuffleSplit",
                         "sklearn.model_selection.StratifiedKFold"),
    # 02 emotion classifier
    "article_code": ("camp.models.load_encoder", "camp.metrics.predict_proba", "camp.metrics.predict",
                     "camp.metrics.evaluate", "transformers.pipeline", "transformers.Pipeline"),
    "weighted_cross_entropy": ("torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss"),
    "macro_f1": ("camp.metrics.classification_metrics", "sklearn.metrics.f1_score", "sklearn.metrics.fbeta_score",
                 "sklearn.metrics.precision_recall_fscore_support", "sklearn.metrics.classification_report"),
    "predict_emotions": ("camp.metrics.predict", "camp.metrics.predict_proba", "camp.metrics.evaluate",
                         "transformers.pipeline", "transformers.Pipeline"),
    # 03 empathy environment
    "transition_rule": ("camp.env.transition",),  # the environment's rule; its intensity update is this one
    "episode_end": ("camp.env.feels_better",),
    "my_policy": ("camp.policies.reflective", "camp.policies.oracle", "camp.policies.reflective_reply"),
    # 04 reward design
    "distinct_n": ("camp.text.distinct_n", "camp.text.corpus_distinct_n",  # of one reply: the same
                   "camp.rewards.repetition_penalty"),  # = distinct_n - 1
    "shaping": ("camp.rewards.potential_shaping",),
    "combine": ("camp.rewards.RewardSpec", "camp.rewards.RewardSpec.__call__"),  # .total calls __call__
    # 05 policy gradients
    "reinforce": ("camp.rl.reinforce_loss", "camp.rl.masked_mean"),
    "gae": ("camp.rl.compute_gae", "camp.rl.discounted_returns"),
    "ppo_clip": ("camp.rl.ppo_clip_loss",),
    "ppo_update": ("camp.rl.ppo_clip_loss", "camp.rl.whiten", "camp.rl.entropy", "camp.rl.value_loss",
                   "camp.ppo.train_ppo"),
    # 06 RL fine-tuning
    "kl_rewards": ("camp.rl.penalised_rewards", "camp.rl.kl_penalty"),
    "adaptive_kl": ("camp.rl.AdaptiveKLController.update",),
    "masked_whiten": ("camp.rl.whiten", "camp.rl.masked_var",
                      "camp.rl.group_normalise"),  # one group of the real positions: whitened, eps aside
    "response_logprobs": ("camp.lm.response_logprobs", "camp.lm.token_logprobs"),
    # 07 learning from preferences
    "bt_loss": ("camp.preferences.bradley_terry_loss", "camp.dpo.dpo_loss",  # zero references, beta = 1
                "torch.nn.functional.binary_cross_entropy_with_logits",  # of chosen - rejected, target 1
                "torch.nn.functional.soft_margin_loss"),  # of chosen - rejected, label 1
    "pairwise_accuracy": ("camp.preferences.pairwise_accuracy", "camp.preferences.agreement",
                          "camp.evaluate.compare"),  # its judge_win_rate, after a tolerance is applied by hand
    "strengths": ("camp.preferences.fit_strengths",),
    "dpo_loss": ("camp.dpo.dpo_loss", "camp.preferences.bradley_terry_loss",
                 "torch.nn.functional.binary_cross_entropy_with_logits", "torch.nn.functional.soft_margin_loss"),
    "best_worst": ("camp.dpo.best_worst_pairs",),
    "rloo_advantages": ("camp.rl.leave_one_out", "camp.rl.group_normalise"),  # GRPO's, rescaled by the std
    # 08 evaluation and responsible use
    "win_rate": ("camp.preferences.pairwise_accuracy", "camp.preferences.agreement", "camp.evaluate.compare"),
    "guard": ("camp.safety.guard", "camp.safety.SafeResponder"),
    "group_gap": ("camp.audit.group_gap",),  # its means, lowest first, give all three
    "model_card": (),  # a written model card, graded by hand: nothing to compute
}

# The message of a refusal, where an exercise has its own; the default is "write it yourself".
MESSAGES = {"weighted_cross_entropy": "write it from scratch", "macro_f1": "write it from scratch",
            "article_code": "build the model and write the loop yourself", "guard": "write the rules yourself"}


def _stub(message: str, where: str, free: int) -> types.CodeType:
    """Code that raises AssertionError("<message> (the tests refuse <where>)"), with `free` closure variables so
    that it fits the __code__ slot of a function with that many (CPython checks only their number)."""
    names = [f"_v{i}" for i in range(free)]
    source = (f"def _factory({', '.join(names)}):\n"
              f"    def refuse(*args, **kwargs):\n"
              f"        {'(' + ', '.join(names) + ',)' if names else 'None'}\n"
              f"        raise AssertionError({f'{message} (the tests refuse {where})'!r})\n"
              f"    return refuse\n")
    scope: dict = {}
    exec(compile(source, "<refused>", "exec"), scope)  # noqa: S102 - our own fixed template, no user input
    return scope["_factory"](*range(free)).__code__


def _targets(fn) -> list[types.FunctionType]:
    """The Python functions whose code to swap: a function and every function it wraps (`__wrapped__`, as a
    decorator or NumPy's dispatch leaves it), a method's function, or a class's own __init__."""
    if isinstance(fn, type):
        init = vars(fn).get("__init__")
        if not isinstance(init, types.FunctionType):
            raise TypeError(f"refused() takes classes that define their own __init__ in Python; {fn.__name__} "
                            "does not: patch it with unittest.mock instead")
        return [init]
    given = getattr(fn, "__func__", fn)  # a bound or class method: its function
    found, fn = [], given
    while fn is not None and fn not in found:
        if isinstance(fn, types.FunctionType):
            found.append(fn)
        fn = getattr(fn, "__wrapped__", None)
    if not found:
        raise TypeError(f"refused() takes Python functions; {given!r} is a {type(given).__name__}: patch it with "
                        "unittest.mock instead")
    return found


@contextmanager
def refused(*functions: Callable, message: str = "write it yourself") -> Iterator[None]:
    """Inside the block, calling any of `functions` raises `AssertionError(message ...)`, whatever name it is
    called by. Takes Python functions (decorated ones, closures and NumPy's dispatched functions too), methods,
    and classes, whose own `__init__` is refused; anything else (a builtin, a C function) is refused with
    TypeError."""
    swapped: list[tuple[types.FunctionType, types.CodeType]] = []
    targets = [(target, f"{fn.__module__}.{fn.__qualname__}") for fn in functions for target in _targets(fn)]
    try:
        for fn, where in targets:
            swapped.append((fn, fn.__code__))
            fn.__code__ = _stub(message, where, len(fn.__code__.co_freevars))
        yield
    finally:
        for fn, code in reversed(swapped):
            fn.__code__ = code


def resolve(name: str):
    """The object a dotted name stands for: the longest importable module prefix, then attributes.

    >>> resolve("camp.rl.AdaptiveKLController.update").__qualname__
    'AdaptiveKLController.update'
    """
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name is not None and module.startswith(err.name) and err.name != parts[0]:
                continue  # not a module: the rest are attributes
            raise
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ModuleNotFoundError(name)


@contextmanager
def refusing(*exercises: str, message: str | None = None) -> Iterator[None]:
    """Inside the block, everything `REFUSALS` lists for `exercises` (grade_ids) raises AssertionError.

    The message is the first exercise's in `MESSAGES` unless `message` is given.

    >>> from camp import rewards
    >>> with refusing("shaping"):
    ...     rewards.potential_shaping([0.0], [1.0], 0.9)
    Traceback (most recent call last):
    AssertionError: write it yourself (the tests refuse camp.rewards.potential_shaping)
    >>> with refusing("model_card"):  # nothing to refuse: the block just runs
    ...     rewards.potential_shaping([0.0], [1.0], 0.9)
    [0.9]
    """
    unknown = [e for e in exercises if e not in REFUSALS]
    if unknown:
        raise KeyError(f"no refusals are registered for {unknown}; add them to REFUSALS in {__name__}")
    functions: dict[int, Callable] = {}
    for exercise in exercises:
        for name in REFUSALS[exercise]:
            fn = resolve(name)
            functions.setdefault(id(fn), fn)
    default = MESSAGES.get(exercises[0], "write it yourself") if exercises else "write it yourself"
    with refused(*functions.values(), message=message or default):
        yield
