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
