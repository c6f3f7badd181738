"""`camp.course.grading.refused`: a borrowed implementation fails however it was imported, and comes back after."""

import pytest
import torch
import torch.nn.functional as F

from camp import rl
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
