"""`camp.course.grading`: a borrowed implementation fails however it was imported, and comes back after; every
graded exercise has its refusals registered, and every graded test cell runs the learner's code only inside them."""

import ast
import re

import nbformat
import pytest
import torch
import torch.nn.functional as F
from conftest import SOLUTIONS

from camp import rl
from camp.course import grading
from camp.course.grading import refused


def test_every_name_for_a_refused_function_raises_and_then_works_again():
    from torch.nn.functional import cross_entropy as ce  # bound before the block, under another name

    logits, labels = F.one_hot(torch.tensor([0, 1]), 3).float(), torch.tensor([0, 1])
    with refused(F.cross_entropy, message="write it from scratch"):
        for call in (F.cross_entropy, ce):
            with pytest.raises(AssertionError, match=r"write it from scratch \(the tests refuse "
                                                     r"torch.nn.functional.cross_entropy\)"):
                call(logits, labels)
    assert ce(logits, labels).item() == pytest.approx(F.cross_entropy(logits, labels).item())


def test_methods_are_refused_and_restored_even_when_the_block_fails():
    ctl = rl.AdaptiveKLController(0.1, 4.0, 100)
    with pytest.raises(ZeroDivisionError), refused(rl.AdaptiveKLController.update):
        with pytest.raises(AssertionError, match="write it yourself"):
            ctl.update(6.0, 10)
        raise ZeroDivisionError("a failing test inside the block")
    ctl.update(6.0, 10)  # restored after an error inside the block
    assert ctl.value > 0.1


def test_decorated_functions_and_classes_are_refused_and_builtins_named():
    import sklearn.metrics

    from camp import safety

    with refused(sklearn.metrics.f1_score, safety.SafeResponder, message="write the rules yourself"):
        with pytest.raises(AssertionError, match="sklearn.metrics._classification.f1_score"):
            sklearn.metrics.f1_score([0, 1], [0, 1])  # a wrapper with a closure (validate_params)
        with pytest.raises(AssertionError, match="write the rules yourself"):
            safety.SafeResponder(lambda said: said)
    assert sklearn.metrics.f1_score([0, 1], [0, 1]) == 1.0
    with pytest.raises(TypeError, match="patch it with unittest.mock"), refused(len):
        pass


# ---- the registry and the test cells: every call of the learner's code is refused ------------------------------

HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", re.S)  # what nbgrader strips


def _exercises(path) -> tuple[dict[str, str], dict[str, str]]:
    """(solution cells, graded test cells) of a solution notebook, each by grade_id; a written answer (a
    markdown solution cell, graded by hand) has the source ''."""
    cells = [(c.metadata["nbgrader"], c.source if c.cell_type == "code" else "") for c in nbformat.read(path, 4).cells
             if "nbgrader" in c.metadata]
    return ({m["grade_id"]: s for m, s in cells if m.get("solution")},
            {m["grade_id"]: s for m, s in cells if m.get("grade") and not m.get("solution")})


def _defined(source: str) -> set[str]:
    """The functions and classes a solution cell defines at its top level: the learner's names."""
    return {n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef | ast.ClassDef)}


def _is_refusal(expr: ast.expr, exercise: str) -> bool:
    """Whether `expr` is `refusing(...)` naming `exercise`: a bare `refused(f)` is not tied to the registry."""
    if not isinstance(expr, ast.Call):
        return False
    name = expr.func.id if isinstance(expr.func, ast.Name) else getattr(expr.func, "attr", "")
    return name == "refusing" and any(isinstance(a, ast.Constant) and a.value == exercise for a in expr.args)


def unrefused(source: str, learner: set[str], exercise: str) -> list[str]:
    """Each use of the learner's names in `source` that does not lie inside `with refusing(exercise)`.

    A function or class the cell defines that uses the learner's code counts as the learner's code: its body
    is not checked, its uses are (as `_blind`, which wraps `my_policy`, in lesson 03).
    """
    tree = ast.parse(source)
    helpers = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)]
    tainted, grew = set(learner), True
    while grew:
        grew = False
        for helper in helpers:
            if helper.name not in tainted and any(isinstance(n, ast.Name) and n.id in tainted
                                                  for n in ast.walk(helper)):
                tainted.add(helper.name)
                grew = True
    found: list[str] = []

    def visit(node: ast.AST, inside: bool) -> None:
        if isinstance(node, ast.With) and any(_is_refusal(item.context_expr, exercise) for item in node.items):
            inside = True
        if node in helpers and node.name in tainted - set(learner):
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in tainted and not inside:
            found.append(f"line {node.lineno}: {node.id}")
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    visit(tree, False)
    return found


def test_the_checker_finds_a_call_outside_the_refusal():
    cell = ("from camp.course.grading import refusing\n\n"
            "assert f(1) == 2\n"  # outside: found
            "with refusing('f'):\n    assert f(2) == 3\n"  # inside: fine
            "with refusing('g'):\n    f(3)\n"  # another exercise's refusal: found
            "def _wrap(x):\n    return f(x)\n\n"  # a helper around f: its uses count
            "_wrap(4)\n"
            "with refusing('f'):\n    _wrap(5)\n"
            "### BEGIN HIDDEN TESTS\nwith refusing('f'):\n    f(6)\n### END HIDDEN TESTS\n")
    assert unrefused(cell, {"f"}, "f") == ["line 3: f", "line 7: f", "line 11: _wrap"]
    assert unrefused(HIDDEN.sub("", cell), {"f"}, "f") == ["line 3: f", "line 7: f", "line 11: _wrap"]
    assert unrefused("with refusing('f'):\n    pass\nf\n", {"f"}, "f") == ["line 3: f"]  # passed on, not called


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_every_use_of_the_learners_code_in_a_graded_test_is_refused(path):
    solutions, tests = _exercises(path)
    learner = set().union(*map(_defined, solutions.values()))
    assert learner, f"{path.name}: no exercise defines a function"
    outside = {}
    for grade_id, source in tests.items():
        exercise = grade_id.removesuffix("_tests")
        assert exercise in solutions, f"{grade_id} tests no exercise of {path.name}"
        # nbgrader strips the hidden part from the lesson: the visible part must stand alone as well
        for part, text in (("visible", HIDDEN.sub("", source)), ("visible + hidden", source)):
            if found := unrefused(text, learner, exercise):
                outside[f"{grade_id} ({part})"] = found
    assert not outside, f"{path.name}: the learner's code runs outside `with refusing(...)`: {outside}"


def test_every_graded_exercise_has_a_registry_entry_and_no_entry_is_stale():
    exercises = [grade_id for path in SOLUTIONS for grade_id in _exercises(path)[0]]
    assert len(exercises) == len(set(exercises)), "grade_ids must be unique across the course"
    assert sorted(set(exercises) - set(grading.REFUSALS)) == [], "graded exercises without a REFUSALS entry"
    assert sorted(set(grading.REFUSALS) - set(exercises)) == [], "REFUSALS entries for no exercise"


def test_every_registered_refusal_resolves_and_is_swapped_then_restored():
    functions = {name: grading.resolve(name) for names in grading.REFUSALS.values() for name in names}
    codes = {name: [t.__code__ for t in grading._targets(fn)] for name, fn in functions.items()}
    with grading.refusing(*grading.REFUSALS):
        for name, fn in functions.items():
            swapped = [t.__code__ for t in grading._targets(fn)]
            assert all(new is not old for new, old in zip(swapped, codes[name], strict=True)), name
    assert {name: [t.__code__ for t in grading._targets(fn)] for name, fn in functions.items()} == codes
    with pytest.raises(KeyError, match="no refusals are registered"), grading.refusing("no_such_exercise"):
        pass


def test_a_refusal_names_the_function_and_the_exercises_message():
    import numpy as np
    import sklearn.metrics

    with grading.refusing("macro_f1"), pytest.raises(AssertionError, match=r"write it from scratch \(the tests "
                                                                           r"refuse sklearn.metrics._classification"):
        sklearn.metrics.precision_recall_fscore_support([0, 1], [0, 1])
    with grading.refusing("discounted_return"), pytest.raises(AssertionError, match="refuse numpy.polyval"):
        np.polyval([1.0, 2.0], 0.5)  # a NumPy function behind its dispatcher
    assert np.polyval([1.0, 2.0], 0.5) == 2.5
    with grading.refusing("macro_f1"), pytest.raises(AssertionError, match="write it from scratch"):
        sklearn.metrics.f1_score.__wrapped__([0, 1], [0, 1])  # what the decorator wraps is refused too
