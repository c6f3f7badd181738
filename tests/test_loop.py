"""camp.loop, the loop core every training loop shares: best weights, early stopping, checkpoint cadence, exact
resume of the weights, optimizer, RNGs and the run's parts. (Each loop's own resume test is beside the loop.)"""

import numpy as np
import pytest
import torch

from camp import checkpoint, loop


def _run(folder, resume=False, **kw):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    rng = np.random.default_rng(7)
    position = loop.Position()
    run = loop.Run(model, optimizer, config={"lr": 0.1}, folder=folder, resume=resume, total=6, every=2,
                   parts={"rng": loop.GeneratorState(rng), "position": position}, **kw)
    return run, rng, position


def _step(run, rng, position):
    run.step += 1
    position.batch += 1
    x = torch.as_tensor(rng.normal(size=(4, 3)), dtype=torch.float32)
    loss = run.model(x).pow(2).mean()
    run.optimizer.zero_grad()
    loss.backward()
    run.optimizer.step()
    return loss.item()


def test_best_weights_and_early_stopping():
    run, *_ = _run(None, patience=2)
    assert run.improved(0.5) and run.best_step == 0
    run.step = 1
    run.model.weight.data.fill_(9.0)
    assert not run.improved(0.5)  # equal is not better
    assert not run.should_stop() and run.bad_evals == 1
    run.step = 2
    assert not run.improved((0.4,)) and run.should_stop()  # two evaluations without a better score
    assert run.final_model().weight.data.ne(9.0).all()  # the best weights are put back
    assert run.improved((0.5, -0.1)) and run.best_score == [0.5, -0.1]  # a tuple compares in order


def test_checkpoints_follow_the_cadence_and_resume_exactly(tmp_path):
    whole, rng, position = _run(None)
    losses = [_step(whole, rng, position) for _ in range(6)]

    cut, rng, position = _run(str(tmp_path))
    written = []
    for _ in range(3):
        _step(cut, rng, position)
        cut.improved(-cut.step)  # the first evaluation is the best: its weights get their own file
        written.append(cut.checkpoint())
    assert written == [False, True, False]  # every 2 steps; the last step (6) is not reached
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-step000001.safetensors", "checkpoint.safetensors"]

    again, rng, position = _run(str(tmp_path), resume=True)
    progress = again.restore()
    assert again.step == 2 and progress["position"] == {"epoch": 0, "batch": 2} and position.batch == 2
    assert again.best_step == 1 and again.best_weights is not None
    resumed = [_step(again, rng, position) for _ in range(4)]
    assert resumed == pytest.approx(losses[2:], abs=0)  # the same numbers as the uninterrupted run


def test_a_missing_best_file_is_refused(tmp_path):
    run, rng, position = _run(str(tmp_path))
    for _ in range(2):
        _step(run, rng, position)
    run.improved(1.0)
    assert run.checkpoint()
    next(tmp_path.glob("best-*")).unlink()
    with pytest.raises(checkpoint.CheckpointError, match="which is missing"):
        _run(str(tmp_path), resume=True)[0].restore()


def test_several_processes_are_refused_for_the_language_model_loops():
    loop.require_one_process(1)
    with pytest.raises(loop.ConfigError, match="train_dpo runs in one process, but 2 were started"):
        loop.require_one_process(2, "train_dpo")
