"""camp.checkpoint's pieces that the training loops share (the loops' own resume tests live beside them)."""

import torch

from camp import checkpoint


def test_trainable_view_saves_only_what_trains():
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1))
    net[0].requires_grad_(False)
    view = checkpoint.TrainableState(net)
    assert set(view.state_dict()) == {"1.weight", "1.bias"}
    missing, unexpected = view.load_state_dict({"1.bias": torch.tensor([5.0]), "junk": torch.zeros(1)})
    assert net[1].bias.item() == 5.0 and missing == ["1.weight"] and unexpected == ["junk"]


def test_cadence_waits_for_the_steps_and_the_minutes_whichever_comes_later(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(checkpoint.time, "monotonic", lambda: now[0])
    cadence = checkpoint.Cadence(every=10, minutes=2, last=1000)
    assert not cadence.due(10)  # enough steps, no time: a fast GPU
    now[0] = 119.0
    assert not cadence.due(15)
    now[0] = 120.0
    assert cadence.due(15) and not cadence.due(9)  # enough time, and enough steps only from step 10
    cadence.saved(15)
    now[0] = 1000.0
    assert not cadence.due(24) and cadence.due(25)  # a slow CPU: the steps decide
    cadence.saved(25)
    assert cadence.due(1000)  # the last step always
