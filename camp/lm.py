"""The policy for RL fine-tuning of a language model: a causal LM with LoRA adapters and a value head.

The reference model of the KL penalty is the same network with its adapters switched off (`reference()`), so
there is no second copy of the weights in memory. Introduced in lesson 06.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from camp import utils

DEFAULT_SYSTEM = ("You are a kind, attentive listener. Reply to the person in one or two short sentences that "
                  "are warm and show you understand how they feel.")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
VALUE_HEAD_FILE = "value_head.safetensors"


def chat_prompts(tokenizer, utterances: list[str], system: str | None = DEFAULT_SYSTEM) -> list[str]:
    """One chat prompt per utterance: (system,) user says the utterance, then the assistant's turn begins.

    With `system=None` the chat template's own default system prompt (if any) is used.
    """
    if isinstance(utterances, str):
        raise TypeError("chat_prompts expects a list of utterances, not one string")
    head = [{"role": "system", "content": system}] if system else []
    return [tokenizer.apply_chat_template(head + [{"role": "user", "content": u}], add_generation_prompt=True,
                                          tokenize=False) for u in utterances]


def eos_mask(tokens: torch.Tensor, eos_ids: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """1 on every token up to and including the first EOS of each row, 0 after it; shape (B, R) like `tokens`.

    >>> eos_mask(torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8]]), [2]).tolist()
    [[1, 1, 0, 0], [1, 1, 1, 1]]
    """
    is_eos = torch.isin(tokens, torch.as_tensor(eos_ids, device=tokens.device)).long()  # (B, R)
    return ((is_eos.cumsum(-1) - is_eos) == 0).long()  # earlier EOS count is 0: not yet past the first EOS


SENTENCE_END = ".!?\u2026"  # a token whose text ends with one of these (closing quotes aside) ends a sentence
CLOSERS = "\"'\u201d\u2019)]*"


def sentence_end_table(tokenizer) -> torch.Tensor:
    """(V,) bools: 1 where a token ends a sentence. Such a token's text, stripped of spaces and closing quotes or
    brackets, ends with . ! ? or an ellipsis, or it holds a line break (a new paragraph starts something else).

    A token of the form "3." in "3.5" counts too: rare in a reply, and the cap in `generate` is the safety net.
    """
    table = torch.zeros(len(tokenizer), dtype=torch.bool)
    for i in range(len(tokenizer)):
        text = tokenizer.decode([i])
        body = text.rstrip().rstrip(CLOSERS)
        table[i] = bool(body) and body[-1] in SENTENCE_END or "\n" in text
    return table


def sentence_mask(tokens: torch.Tensor, ends: torch.Tensor, sentences: int) -> torch.Tensor:
    """1 on every token up to and including the one that ends the `sentences`-th sentence, 0 after; (B, R).

    `ends` is `sentence_end_table(tokenizer)`. A run of ending tokens ("!!", ". \\n") ends one sentence, at its
    first token. `sentences=0` keeps every token.

    >>> ends = torch.tensor([False, False, True, True])  # tokens 2 and 3 end sentences, 0 and 1 are words
    >>> sentence_mask(torch.tensor([[0, 2, 3, 1, 2, 1], [0, 1, 0, 1, 0, 1]]), ends, 1).tolist()
    [[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]]
    >>> sentence_mask(torch.tensor([[0, 2, 3, 1, 2, 1]]), ends, 2).tolist()
    [[1, 1, 1, 1, 1, 0]]
    """
    if sentences <= 0:
        return torch.ones_like(tokens)
    new_end = _sentence_ends_at(tokens, ends)
    finished_before = new_end.cumsum(-1) - new_end  # sentences ended before this token
    return (finished_before < sentences).long()


def _sentence_ends_at(tokens: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """(B, R) 1 where a sentence ends: the first token of each run of ending tokens."""
    is_end = ends.to(tokens.device)[tokens].long()
    after_end = torch.cat([torch.zeros_like(is_end[:, :1]), is_end[:, :-1]], dim=1)
    return is_end * (1 - after_end)


class SentenceStop:
    """A transformers stopping criterion: a row stops once its reply has ended `sentences` sentences (the rule
    of `sentence_mask`), so a batch stops generating as soon as every reply in it is complete."""

    def __init__(self, ends: torch.Tensor, prompt_length: int, sentences: int):
        self.ends, self.start, self.sentences = ends, prompt_length, sentences

    def __call__(self, input_ids: torch.Tensor, scores=None, **kwargs) -> torch.Tensor:
        return _sentence_ends_at(input_ids[:, self.start:], self.ends).sum(-1) >= self.sentences


def token_logprobs(logits: torch.Tensor, response_ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-probs (B, R), in float32, of the reply tokens `response_ids` (B, R) under `logits` (B, R, V) divided by
    `temperature`: the one place camp turns logits into the log-probs PPO, DPO and evaluation read.

    >>> token_logprobs(torch.zeros(1, 2, 4), torch.tensor([[0, 3]])).exp().tolist()  # uniform over 4 tokens
    [[0.25, 0.25]]
    """
    return torch.log_softmax(logits.float() / temperature, -1).gather(-1, response_ids.unsqueeze(-1)).squeeze(-1)


def response_logprobs(model: nn.Module, batch: dict,
                      temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probs (B, R) of the response tokens, in float32, the values (B, R) of the states before them and the
    logits (B, R, V) that predicted them (divided by `temperature`), from one forward pass over prompt + response.

    `model(ids, mask, logits_to_keep=k)` returns (logits, values), as `PolicyWithValue` does; `batch` holds
    `query_ids`, `query_mask`, `response_ids`, `response_mask` (from `PolicyWithValue.generate`). Position t
    predicts token t + 1, so the R response tokens come from the last R + 1 positions but one. `temperature` must
    be the one the replies were sampled at: the policy PPO trains is softmax(logits / T). For the reference
    model's log-probs, call it inside `with policy.reference():`, or use `policy_and_reference`.
    """
    ids = torch.cat([batch["query_ids"], batch["response_ids"]], dim=1)  # (B, Q + R)
    mask = torch.cat([batch["query_mask"], batch["response_mask"]], dim=1)
    r = batch["response_ids"].shape[1]
    logits, values = model(ids, mask, logits_to_keep=r + 1)  # (B, R + 1, V), (B, Q + R)
    logits = logits[:, :-1].float() / temperature  # (B, R, V)
    return token_logprobs(logits, batch["response_ids"]), values[:, -r - 1:-1].float(), logits


@torch.no_grad()
def policy_and_reference(model: nn.Module, policy: PolicyWithValue, batch: dict, temperature: float = 1.0,
                         with_policy: bool = True) -> dict[str, torch.Tensor]:
    """The replies in `batch` scored by the policy and by its reference (the adapters off), without gradients:
    `logprobs`, `values`, `logits` and `ref_logprobs`, `ref_logits` (as `response_logprobs` returns them).
    `model` is the policy as the loop runs it (wrapped by Accelerate, or `policy` itself); `with_policy=False`
    scores under the reference only."""
    out = {}
    if with_policy:
        out["logprobs"], out["values"], out["logits"] = response_logprobs(model, batch, temperature)
    with policy.reference():
        out["ref_logprobs"], _, out["ref_logits"] = response_logprobs(model, batch, temperature)
    return out


def sample_replies(policy: PolicyWithValue, utterances: Sequence[str], max_new_tokens: int = 40,
                   temperature: float = 0.7, sentences: int = 2) -> dict:
    """One sampled reply to each utterance, as a chat turn of the policy's own tokenizer (`chat_prompts`):
    `PolicyWithValue.generate`'s batch, with the replies' `texts`."""
    return policy.generate(chat_prompts(policy.tokenizer, list(utterances)), max_new_tokens=max_new_tokens,
                           temperature=temperature, sentences=sentences)


def language_model_policy(policy: PolicyWithValue, max_new_tokens: int = 40, temperature: float = 0.7,
                          batch_size: int = 16) -> Callable[..., list[str]]:
    """A `PolicyWithValue` (lesson 06) as a reply policy (`camp.roles.ReplyPolicy`); it reads only the
    utterances, `batch_size` at a time."""
    from camp.roles import from_texts

    def reply(utterances: list[str]) -> list[str]:
        out = []
        for start in range(0, len(utterances), batch_size):
            out += sample_replies(policy, utterances[start:start + batch_size], max_new_tokens, temperature)["texts"]
        return out

    return from_texts(reply)


class PolicyWithValue(nn.Module):
    """A causal LM with LoRA adapters (the policy) and a linear value head on its last hidden state (the critic).

    The base weights stay frozen; only the adapters and the value head train. Peft's LoRA B matrices start at
    zero and so does the value head, so before training the policy equals the reference model and values are 0.

    Args:
        model: a transformers causal LM (e.g. from `camp.models.load_policy`). Adapters are injected in place.
        tokenizer: its tokenizer, padding on the left, with a pad token.
        r, lora_alpha, lora_dropout, target_modules: the LoRA configuration (ignored when `lora_config` is given).
        lora_config: a ready `peft.LoraConfig`.
    """

    def __init__(self, model: nn.Module, tokenizer, r: int = 8, lora_alpha: int = 16, lora_dropout: float = 0.0,
                 target_modules: Sequence[str] = LORA_TARGETS, lora_config=None):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        if tokenizer.pad_token_id is None or tokenizer.padding_side != "left":
            raise ValueError("the tokenizer needs a pad token and padding_side='left' (use camp.models.load_policy)")
        self.lora_config = lora_config or LoraConfig(r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                                                     target_modules=list(target_modules), task_type="CAUSAL_LM")
        self.tokenizer = tokenizer
        with warnings.catch_warnings():  # peft 0.21 calls a property transformers 5 deprecates; not ours to fix
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
            self.peft = get_peft_model(model, self.lora_config)
        hidden = model.config.hidden_size
        self.value_head = nn.Linear(hidden, 1, device=next(model.parameters()).device)  # kept in float32
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        eos = model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [tokenizer.eos_token_id if eos is None else eos]
        self.register_buffer("eos_ids", torch.tensor(eos), persistent=False)

    @classmethod
    def from_pretrained(cls, name: str = "auto", adapters: str | Path | None = None, device: str = "auto",
                        dtype: torch.dtype | str = "auto", **lora) -> PolicyWithValue:
        """Load the base model (`camp.models.load_policy`), wrap it, and optionally load saved adapters.

        `dtype="auto"` (`utils.weights_dtype`) keeps the frozen base in bfloat16 on GPUs that compute in it
        natively and in float32 elsewhere, so that replies are generated and trained with the same numbers.
        """
        from camp.models import load_policy

        target = utils.get_device(device)
        model, tokenizer = load_policy(name, dtype=utils.weights_dtype(target) if dtype == "auto" else dtype)
        policy = cls(model, tokenizer, **lora).to(target)
        if adapters is not None:
            policy.load_adapters(adapters)
        return policy

    @property
    def device(self) -> torch.device:
        return self.value_head.weight.device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                logits_to_keep: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, T, V) and values (B, T) for left-padded sequences.

        Positions count real tokens only, as in `generate`, so a left-padded row scores like the same row alone.
        `logits_to_keep=k > 0` computes logits for the last k positions only (B, k, V), which saves memory.
        """
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)
        out = self.peft(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                        output_hidden_states=True, use_cache=False, logits_to_keep=logits_to_keep)
        hidden = out.hidden_states[-1].float()  # (B, T, H)
        values = self.value_head(hidden).squeeze(-1)  # (B, T)
        return out.logits, values

    @contextmanager
    def reference(self) -> Iterator[None]:
        """Inside this block the adapters are off: the model is the frozen reference (the base weights)."""
        with self.peft.disable_adapter():
            yield

    @property
    def sentence_ends(self) -> torch.Tensor:
        """`sentence_end_table` of this policy's tokenizer, built once (a second or so)."""
        if getattr(self, "_sentence_ends", None) is None:
            self._sentence_ends = sentence_end_table(self.tokenizer)
        return self._sentence_ends

    @torch.no_grad()
    def generate(self, prompts: list[str], max_new_tokens: int = 40, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, do_sample: bool = True, min_new_tokens: int = 0, sentences: int = 2) -> dict:
        """Batched replies to `prompts` (strings, e.g. from `chat_prompts`), with the KV cache.

        A reply ends at the end of its first `sentences` sentences (`sentence_mask`), at the end-of-turn token, or
        after `max_new_tokens`, whichever comes first: the cap is only a safety net, so nobody reads a reply cut
        mid-word. `sentences=0` ends replies at the end-of-turn token or the cap only.

        Returns a dict of tensors on the model's device: `query_ids`, `query_mask` (B, Q) left-padded prompts;
        `response_ids` (B, R) right-padded with the pad token after the reply's end; `response_mask` (B, R), 1 on
        the reply's own tokens (an end-of-turn token the model chose included); and `texts`, the decoded replies
        (stripped).
        """
        from transformers import StoppingCriteriaList

        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        query_ids, query_mask = enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)
        sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p) if do_sample else {}
        stop = StoppingCriteriaList([SentenceStop(self.sentence_ends, query_ids.shape[1], sentences)]) \
            if sentences > 0 else None
        out = self.peft.generate(input_ids=query_ids, attention_mask=query_mask, max_new_tokens=max_new_tokens,
                                 min_new_tokens=min_new_tokens, do_sample=do_sample, use_cache=True,
                                 pad_token_id=self.tokenizer.pad_token_id, eos_token_id=self.eos_ids.tolist(),
                                 stopping_criteria=stop, **sampling)
        response = out[:, query_ids.shape[1]:]  # (B, R)
        response_mask = eos_mask(response, self.eos_ids)
        if sentences > 0:
            response_mask = response_mask * sentence_mask(response, self.sentence_ends, sentences)
        response_ids = response.masked_fill(response_mask == 0, self.tokenizer.pad_token_id)
        texts = [self.tokenizer.decode(ids[m.bool()], skip_special_tokens=True).strip()
                 for ids, m in zip(response_ids, response_mask, strict=True)]
        return {"query_ids": query_ids, "query_mask": query_mask, "response_ids": response_ids,
                "response_mask": response_mask, "texts": texts}

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters an optimizer should see: the LoRA adapters and the value head."""
        return [p for p in self.parameters() if p.requires_grad]

    def describe(self) -> str:
        """One line: LoRA rank, trainable and total parameter counts."""
        trainable = sum(p.numel() for p in self.trainable_parameters())
        total = sum(p.numel() for p in self.parameters())
        return f"LoRA r={self.lora_config.r}: {trainable / 1e6:.2f}M trainable of {total / 1e6:.0f}M parameters"

    def __repr__(self) -> str:
        return f"PolicyWithValue({self.describe()})"

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """A copy of the LoRA adapter tensors, to keep a policy in memory and swap it back in with
        `load_adapter_state` (one base model, several trained policies: lesson 07's side-by-side view)."""
        return {k: v.detach().clone() for k, v in self.peft.state_dict().items() if "lora_" in k}

    def load_adapter_state(self, state: dict[str, torch.Tensor]) -> None:
        """Put back adapters kept by `adapter_state`; refuses a state that leaves any adapter tensor unset."""
        result = self.peft.load_state_dict(state, strict=False)
        if missing := [k for k in result.missing_keys if "lora_" in k]:
            raise ValueError(f"the adapter state lacks {len(missing)} LoRA tensors (first: {missing[0]}); keep it "
                             "with adapter_state() of a policy built with the same LoRA settings")

    def save_adapters(self, path: str | Path) -> Path:
        """Save the adapters (peft's `adapter_model.safetensors` + `adapter_config.json`) and the value head."""
        from safetensors.torch import save

        path = Path(path)
        self.peft.save_pretrained(path)
        head = {k: v.detach().cpu().contiguous() for k, v in self.value_head.state_dict().items()}
        utils.atomic_write_bytes(path / VALUE_HEAD_FILE, save(head))
        return path

    def load_adapters(self, path: str | Path) -> None:
        """Load adapters and value head saved by `save_adapters`; refuses a different LoRA shape."""
        from peft.utils import load_peft_weights, set_peft_model_state_dict
        from safetensors.torch import load_file

        path = Path(path)
        files = [path / "adapter_config.json", path / VALUE_HEAD_FILE]
        if missing := [f.name for f in files if not f.is_file()]:
            raise FileNotFoundError(f"{path} is not a folder saved by save_adapters: {missing} missing")
        saved = json.loads(files[0].read_text())
        ours = (self.lora_config.r, sorted(self.lora_config.target_modules))
        if (saved.get("r"), sorted(saved.get("target_modules") or [])) != ours:
            raise ValueError(f"{path} holds LoRA r={saved.get('r')} on {saved.get('target_modules')}, but this "
                             f"policy has r={ours[0]} on {ours[1]}; build the policy with the saved settings")
        result = set_peft_model_state_dict(self.peft, load_peft_weights(str(path), device=str(self.device)))
        if result.unexpected_keys:
            raise ValueError(f"{path} has weights this policy does not: {result.unexpected_keys[:3]}")
        self.value_head.load_state_dict(load_file(files[1], device=str(self.device)))

    def merged(self) -> nn.Module:
        """A plain transformers model with the adapters merged into a copy of the weights (for export).

        The policy itself is left untouched, so training can go on.
        """
        return copy.deepcopy(self.peft).merge_and_unload()
