"""Device bugs a CPU-only CI cannot see on its own, caught with a pretend GPU (tests/fake_gpu.py): lesson 02's
`predict_emotions` and lesson 05's `SelfGraded` environment, as the solutions write them, run with the model on
the GPU. Both failed on a real GPU before they moved their inputs to the model's device."""

import nbformat
import numpy as np
import pytest
import torch
from conftest import ROOT
from fake_gpu import on_fake_gpu

from camp import ppo, rl_envs


def _solution_cell(lesson: str, contains: str) -> str:
    """The source of the one code cell of a solution notebook that contains `contains`."""
    path = next((ROOT / "solutions" / lesson).glob("*.ipynb"))
    cells = [c.source for c in nbformat.read(path, 4).cells if c.cell_type == "code" and contains in c.source]
    assert len(cells) == 1, f"{path.name}: {len(cells)} code cells contain {contains!r}"
    return cells[0].replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", "")


@pytest.fixture(scope="module")
def tiny_classifier():
    # A random-initialised BERT from a config: the bookkeeping is under test, not the weights.
    from transformers import BertConfig, BertForSequenceClassification

    from camp import data, models

    _, tokenizer = models.load_encoder("auto")
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=6, id2label=dict(enumerate(data.EMOTIONS)))
    torch.manual_seed(0)
    return BertForSequenceClassification(config).eval(), tokenizer


def test_the_fake_gpu_behaves_like_a_real_one():
    layer = torch.nn.Linear(3, 2)
    with on_fake_gpu(layer):
        assert layer.weight.device.type == "cuda"
        with pytest.raises(RuntimeError, match="same device"):
            layer(torch.ones(4, 3))  # a CPU batch into a GPU model
        out = layer(torch.ones(4, 3).to(layer.weight.device))
        assert out.device.type == "cuda"
        with pytest.raises(TypeError, match="Use Tensor.cpu"):
            out.numpy()
        assert out.detach().cpu().numpy().shape == (4, 2)
        made = torch.as_tensor(np.ones((2, 3), np.float32), device=layer.weight.device)
        assert made.device.type == "cuda" and layer(made).shape == (2, 2)
        assert out[torch.tensor([0, 1])].shape == (2, 2)  # CPU index tensors are fine, as on a real GPU


def test_lesson_02_predict_emotions_moves_each_batch_to_the_model(tiny_classifier):
    model, tokenizer = tiny_classifier
    scope = {}
    exec(_solution_cell("02_emotion_classifier", "def predict_emotions("), scope)
    texts = ["my grandad passed away last night", "they surprised me with a puppy!!", "ok"]
    on_cpu = scope["predict_emotions"](texts, model, tokenizer)
    with on_fake_gpu(model):
        assert scope["predict_emotions"](texts, model, tokenizer, batch_size=2) == on_cpu


def test_lesson_02_predict_emotions_without_the_move_fails_on_the_gpu(tiny_classifier):
    # The version before the fix: the batch stays on the CPU. The fake GPU must catch it, or the test above
    # proves nothing.
    model, tokenizer = tiny_classifier
    scope = {}
    exec(_solution_cell("02_emotion_classifier", "def predict_emotions(").replace(".to(model.device)", ""), scope)
    scope["predict_emotions"](["fine"], model, tokenizer)  # on the CPU it works
    with on_fake_gpu(model), pytest.raises(RuntimeError, match="same device"):
        scope["predict_emotions"](["fine"], model, tokenizer)


def _self_graded(source: str):
    scope = {"rl_envs": rl_envs, "torch": torch, "np": np}
    exec(source, scope)
    return scope["SelfGraded"]


def test_lesson_05_self_graded_env_feeds_the_policy_on_its_device():
    source = _solution_cell("05_policy_gradients", "class SelfGraded(")
    features = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    labels = np.arange(20) % 6
    env = _self_graded(source)(features, labels, n=4)
    env.policy = ppo.ActorCritic(8, 6)
    obs, _ = env.reset(seed=0)
    on_cpu = env.step(np.array([0, 1, 2, 3]))[1]
    env.reset(seed=0)
    with on_fake_gpu(env.policy):
        _, reward, *_ = env.step(np.array([0, 1, 2, 3]))
    assert isinstance(reward, np.ndarray) and np.allclose(reward, on_cpu)

    # The old version: CPU observations into the policy, then .numpy() on its output. Both fail on a GPU.
    old = source.replace("torch.as_tensor(obs, device=device)", "torch.as_tensor(obs)").replace(
        "own.cpu().numpy()", "own.numpy()").replace(", device=device)]", ")]")
    env = _self_graded(old)(features, labels, n=4)
    env.policy = ppo.ActorCritic(8, 6)
    env.reset(seed=0)
    with on_fake_gpu(env.policy), pytest.raises(RuntimeError, match="same device"):
        env.step(np.array([0, 1, 2, 3]))
