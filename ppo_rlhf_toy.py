"""RLHF on a toy language, end to end on a CPU: SFT, a reward model from preferences, PPO.

The last chapter: ppo.py applied to a language model. A response is an episode, each token an
action, and the only reward is a learned reward model's score at the end. Three stages:
(1) SFT: a tiny transformer learns a hidden "true language"; (2) a reward model learns from
pairs of SFT samples labelled by a hidden gold scorer (the stand-in for human raters);
(3) PPO with four models (frozen reference, LoRA policy, frozen reward model, value model) and
a per-token KL penalty that keeps the policy near the reference. `--beta 0` shows why:
the policy over-optimizes the learned proxy while the gold score falls. Settings are chosen on
validation prompts; held-out prompts only report; no training loss ever sees either.

Beside PPO, the critic-free road (three models): `--advantage rloo` and `--advantage grpo`
replace the value model by a baseline from the other responses to the same prompt, with the same
per-token KL reward and PPO-clip update. GRPO's division by the group's std scales the score and
the KL penalty alike, so both optimize PPO's score - beta * KL and only the baseline differs. The
canonical RLOO (Ahmadian et al. 2024) puts the KL in the reward per sequence; GRPO (Shao et al.
2024) puts a k3 KL term in the loss, unscaled. `--dpo` (Rafailov et al. 2023) learns from the
reward model's own preference pairs with no reward model and no sampling. Best-of-n from SFT,
with its exact KL, is the frontier (Gao et al. 2022).

    python ppo_rlhf_toy.py
    python ppo_rlhf_toy.py --advantage grpo
    python ppo_rlhf_toy.py --dpo --beta 0.2
    python ppo_rlhf_toy.py --beta 0 --rm-num-pairs 500
"""

import copy
import json
import math
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro


@dataclass
class Args:
    exp_name: str = "ppo_rlhf_toy"
    """name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of the experiment (the language, the data, the models and the sampling)"""
    track: bool = False
    """if toggled, log the run to Weights & Biases (works with WANDB_MODE=offline)"""
    wandb_project_name: str = "rlref"
    """the wandb project name"""
    wandb_entity: str | None = None
    """the wandb entity (team); None uses your default entity"""

    # The toy language and the model
    prompt_len: int = 4
    """words per prompt (16^4 = 65,536 prompts at 4; one in 7 held out, one in 7 validation)"""
    max_response_len: int = 10
    """the most tokens a response may have, EOS included (without EOS by then: truncated)"""
    d_model: int = 64
    """the transformer's width"""
    n_layer: int = 2
    """the number of transformer blocks"""
    n_head: int = 4
    """the number of attention heads"""

    # Stage 1: SFT
    sft_steps: int = 200
    """gradient steps of supervised fine-tuning on samples of the true language"""
    sft_batch_size: int = 128
    """sequences per SFT step"""
    sft_learning_rate: float = 3e-3
    """the learning rate of SFT"""

    # Stage 2: reward model
    rm_num_pairs: int = 2000
    """preference pairs (two SFT responses to one prompt) the reward model learns from"""
    rm_label_temperature: float = 0.3
    """tau of the simulated raters: P(a preferred to b) = sigmoid((gold(a) - gold(b)) / tau)"""
    rm_epochs: int = 4
    """passes over the preference pairs"""
    rm_batch_size: int = 64
    """pairs per reward-model (and DPO) step"""
    rm_learning_rate: float = 3e-3
    """the learning rate of the reward model's LoRA and head"""
    lora_rank: int = 8
    """the rank r of every LoRA adapter (policy, reward model, value model)"""
    lora_alpha: float = 16.0
    """LoRA's scale is alpha / r"""

    # Stage 3: PPO
    advantage: Literal["gae", "rloo", "grpo"] = "gae"
    """`gae`: token GAE on a value model (four models); `rloo`, `grpo`: a baseline from the
    prompt's other responses"""
    dpo: bool = False
    """if toggled, DPO instead of RL: the policy learns from the reward model's preference pairs
    (two models: no reward model, no sampling), at the same --beta"""
    dpo_epochs: int = 2
    """DPO's passes over the preference pairs (--rm-batch-size pairs a step)"""
    num_generations: int = 4
    """K, responses sampled per prompt: a batch holds batch-size / K prompts (rloo, grpo: K >= 2)"""
    num_updates: int = 40
    """PPO updates (each samples one batch of responses)"""
    batch_size: int = 256
    """responses per PPO update"""
    num_minibatches: int = 4
    """minibatches per PPO epoch"""
    ppo_epochs: int = 4
    """passes over each batch of responses"""
    learning_rate: float = 3e-3
    """the learning rate of the policy's LoRA (PPO, DPO) and of the value model"""
    anneal_lr: bool = False
    """if toggled, the learning rate decays linearly to 0 (TRL's default); the settings were
    chosen at a constant one"""
    temperature: float = 1.0
    """sampling temperature; it also divides the policy's and the reference's logits"""
    beta: float = 0.5
    """the KL coefficient: per-token reward -beta * KL_t (0: none)"""
    kl_estimator: Literal["k1", "k3"] = "k1"
    """per-token KL in the reward: `k1` = log p/p_ref, whose gradient is the KL's;
    `k3` = r - 1 - log r, whose is not"""
    kl_target: float | None = None
    """if set, adapt beta so the sequence-level KL tracks this target (Ziegler et al. 2019)"""
    kl_horizon: int = 10_000
    """the adaptive KL controller's horizon, in responses"""
    gamma: float = 1.0
    """the discount factor over response tokens"""
    gae_lambda: float = 0.95
    """the lambda of token-level GAE"""
    cliprange: float = 0.2
    """the PPO clip range of the ratio"""
    cliprange_value: float = 0.2
    """the clip range of the value loss around the old values"""
    vf_coef: float = 0.1
    """the coefficient of the value loss"""
    max_grad_norm: float = 1.0
    """the maximum norm for gradient clipping"""
    whiten_rewards: bool = False
    """if toggled, whiten the per-token rewards of each batch before GAE (gae only)"""
    missing_eos_penalty: float = 1.0
    """subtracted from the reward model's score of a response that has no EOS"""
    value_model: Literal["reward", "shared"] = "reward"
    """gae's critic: `reward`, a copy of the reward model trained as V; `shared`, a head on the
    policy's trunk"""
    eval_every: int = 10
    """evaluate on held-out prompts every this many updates"""
    eval_prompts: int = 512
    """prompts of each evaluation, from each of the held-out and the validation parts (and at the
    end from the training part)"""
    best_of_n: int = 64
    """the largest n of the best-of-n frontier from SFT (n = 1, 2, 4, ... up to it); 0 skips it"""
    best_of_n_samples: int = 128
    """SFT samples per prompt: best-of-n is computed exactly for their empirical distribution"""
    best_of_n_prompts: int = 64
    """the first this many held-out evaluation prompts (at most all of them) get best-of-n"""


class UsageError(ValueError):
    """A setting the script cannot run with; raised before training, printed as one line."""


def check_args(args: Args):
    """Refuse settings that cannot work, each with one line that says what to do."""
    for name in [
        "prompt_len",
        "max_response_len",
        "d_model",
        "n_layer",
        "n_head",
        "sft_steps",
        "sft_batch_size",
        "rm_num_pairs",
        "rm_epochs",
        "rm_batch_size",
        "lora_rank",
        "num_updates",
        "batch_size",
        "num_minibatches",
        "ppo_epochs",
        "eval_every",
        "eval_prompts",
        "kl_horizon",
        "num_generations",
        "dpo_epochs",
        "best_of_n_samples",
        "best_of_n_prompts",
    ]:
        # eval_prompts >= 2: the gain is in units of the SFT samples' gold std
        minimum = 2 if name == "eval_prompts" else 1
        if getattr(args, name) < minimum:
            raise UsageError(
                f"--{name.replace('_', '-')} must be at least {minimum}, got {getattr(args, name)}"
            )
    if args.d_model % args.n_head:
        raise UsageError(
            f"--d-model ({args.d_model}) must be divisible by --n-head ({args.n_head})"
        )
    for name in ["num_minibatches", "num_generations"]:
        if args.batch_size % getattr(args, name):
            raise UsageError(
                f"--batch-size ({args.batch_size}) must be divisible by --{name.replace('_', '-')} "
                f"({getattr(args, name)})"
            )
    for name in ["temperature", "rm_label_temperature", "kl_target"]:
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0, got {value}")
    for name in ["beta", "best_of_n"]:
        if getattr(args, name) < 0:
            raise UsageError(
                f"--{name.replace('_', '-')} must be >= 0 (0: none), got {getattr(args, name)}"
            )
    if args.dpo and (args.advantage != "gae" or args.kl_target is not None):
        raise UsageError("--dpo learns without rollouts: drop --advantage and --kl-target")
    if args.dpo and args.beta == 0:
        raise UsageError("--dpo needs --beta > 0: at 0 DPO's loss is constant and nothing learns")
    if args.kl_target is not None and args.beta == 0:
        raise UsageError(
            "--kl-target needs --beta > 0 to start from: the controller multiplies beta, "
            "so 0 stays 0"
        )
    if args.prompt_len > 15:
        raise UsageError(f"--prompt-len must be at most 15, got {args.prompt_len}")
    if args.best_of_n > args.best_of_n_samples:
        raise UsageError(
            f"--best-of-n ({args.best_of_n}) must be at most --best-of-n-samples "
            f"({args.best_of_n_samples}): best-of-n chooses among those samples"
        )
    if args.advantage != "gae" and args.num_generations < 2:
        raise UsageError(
            f"--advantage {args.advantage} needs --num-generations >= 2 "
            "(its baseline is the prompt's other responses)"
        )


# --- the toy language: a hidden bigram chain, and a hidden gold scorer that plays the human ---
PAD, BOS, SEP, EOS = 0, 1, 2, 3
WORDS = [
    "sun",
    "rain",
    "cat",
    "dog",
    "tree",
    "sea",
    "red",
    "blue",
    "happy",
    "sad",
    "run",
    "sleep",
    "big",
    "small",
    "good",
    "bad",
]
VOCAB = ["<pad>", "<bos>", "<sep>", "<eos>"] + WORDS  # token t >= 4 is WORDS[t - 4]
SPLIT_MODULUS = 7  # a prompt's number mod 7: 0 held out, 1 validation, else training


def prompt_split(prompts: np.ndarray) -> np.ndarray:
    """The split, by a rule: a prompt's words read as a base-16 number n; n % 7 == 0 is held out
    (one prompt in 7: it only reports), n % 7 == 1 is validation (one in 7: it chooses settings),
    the rest trains. No stage of training ever draws a held-out or a validation prompt."""
    places = len(WORDS) ** np.arange(prompts.shape[1] - 1, -1, -1)
    n = ((prompts - 4) * places).sum(1) % SPLIT_MODULUS
    return np.where(n == 0, "heldout", np.where(n == 1, "validation", "train"))


class ToyLanguage:
    """Sequences `BOS prompt SEP response EOS PAD...`. A prompt is 4 uniformly random words
    (65,536 prompts). Words follow a sparse random bigram chain (each word has 4 possible
    successors); the response continues the chain from the prompt's last word, and its chance to
    end grows with its length: P(EOS after i words) = sigmoid(i - 4).

    Each word belongs to one of two hidden groups; the prompt's topic is the group most of its
    words belong to (a tie: its last word's). The gold scorer reads the topic:

    gold(response) = mean over its distinct words of valence[topic, word]
                     + 0.5 * mean log P_true(bigram) - 2 * [no EOS]
    Valence rewards some words in one topic and others in the other, so a policy must read the
    whole prompt; fluency rewards the true language's word order; a response that repeats one
    good word is not fluent, which a reward model that only ever saw fluent SFT samples cannot
    know.
    """

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        n = len(WORDS)
        self.group = rng.permutation(np.arange(n) % 2)  # each word's group, 8 words in each
        self.valence = rng.uniform(-1.0, 1.0, (2, n))  # valence[topic, word]
        self.bigram = np.zeros((n, n))  # P(next word | word), 4 successors each
        for w in range(n):
            successors = rng.choice(n, 4, replace=False)
            self.bigram[w, successors] = rng.dirichlet(np.ones(4))
        # smoothed: an impossible bigram costs about log(1e-3)
        self.log_bigram = np.log(self.bigram + 1e-3)

    def prompts(self, rng: np.random.Generator, n: int, prompt_len: int, split: str):
        """n prompts (n, prompt_len) of uniformly random words from one part of the split,
        "train", "validation" or "heldout" (rows in another part are drawn again)."""
        prompts = rng.integers(0, len(WORDS), (n, prompt_len)) + 4
        wrong = prompt_split(prompts) != split
        while wrong.any():
            prompts[wrong] = rng.integers(0, len(WORDS), (wrong.sum(), prompt_len)) + 4
            wrong = prompt_split(prompts) != split
        return prompts

    def respond(self, rng: np.random.Generator, prompts: np.ndarray, max_response_len: int):
        """The true language's responses (n, max_response_len) to the prompts."""
        n = len(prompts)
        word = prompts[:, -1] - 4
        responses = np.full((n, max_response_len), PAD)
        ended = np.zeros(n, bool)
        for i in range(max_response_len):
            cdf = self.bigram[word].cumsum(1)
            word = np.minimum((rng.random((n, 1)) > cdf).sum(1), len(WORDS) - 1)
            eos_now = ~ended & (rng.random(n) < 1 / (1 + math.exp(-(i - 4))))
            responses[:, i] = np.where(ended, PAD, np.where(eos_now, EOS, word + 4))
            ended |= eos_now
        return responses

    def topic(self, prompts: np.ndarray) -> np.ndarray:
        """The group most of the prompt's words belong to; a tie: the last word's group."""
        groups = self.group[prompts - 4]
        twice_ones = 2 * groups.sum(1)
        tie = groups[:, -1]
        length = prompts.shape[1]
        return np.where(twice_ones > length, 1, np.where(twice_ones < length, 0, tie))

    def gold_score(self, prompts: np.ndarray, responses: np.ndarray) -> np.ndarray:
        """The hidden human's score of each response (formula above; an empty response
        has valence -1)."""
        is_word = np.cumsum(responses == EOS, 1) == 0  # before the first EOS
        has_eos = (responses == EOS).any(1)
        n_words = is_word.sum(1)
        words = np.where(is_word, responses - 4, 0)
        present = np.zeros((len(responses), len(WORDS)))
        rows, cols = np.nonzero(is_word)
        present[rows, words[rows, cols]] = 1.0  # each distinct word once
        valence = (present * self.valence[self.topic(prompts)]).sum(1)
        valence = np.where(n_words > 0, valence / np.maximum(present.sum(1), 1), -1.0)
        chain = np.concatenate([prompts[:, -1:] - 4, words], 1)
        log_p = self.log_bigram[chain[:, :-1], chain[:, 1:]] * is_word
        fluency = log_p.sum(1) / np.maximum(n_words, 1)  # 0 for an empty response
        return valence + 0.5 * fluency - 2.0 * ~has_eos


def to_text(tokens) -> str:
    return " ".join(VOCAB[t] for t in tokens if t != PAD)


# --- the model: a tiny causal transformer (pre-LN, no dropout) with a KV cache for sampling ---
class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, 4 * d_model)
        self.fc2 = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.qkv(self.ln1(x)).view(B, T, 3, self.n_head, C // self.n_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, n_head, T, C // n_head)
        if cache is not None:  # KV cache: prepend the keys and values of the positions already seen
            if "k" in cache:
                k = torch.cat([cache["k"], k], 2)
                v = torch.cat([cache["v"], v], 2)
            cache["k"] = k
            cache["v"] = v
        # T > 1 only for a whole sequence or a prompt into an empty cache: causal mask; one new
        # token may attend to every cached position.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyLM(nn.Module):
    def __init__(self, vocab_size: int, max_len: int, d_model: int, n_layer: int, n_head: int):
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size)

    def hidden(
        self, tokens: torch.Tensor, caches: list | None = None, start: int = 0
    ) -> torch.Tensor:
        """The last layer's features (B, T, d_model) of tokens at positions start..start+T-1."""
        x = self.tok_emb(tokens) + self.pos_emb(
            torch.arange(start, start + tokens.shape[1], device=tokens.device)
        )
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i])
        return self.ln_f(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.hidden(tokens))


class ScalarModel(nn.Module):
    """A trunk's features through a linear head to one number per position: the reward
    model, the value model."""

    def __init__(self, trunk: TinyLM, d_model: int):
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(d_model, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk.hidden(tokens)).squeeze(-1)  # (B, T)


# --- LoRA: a frozen base plus a trainable low-rank update ---
class LoRALinear(nn.Module):
    """y = x W^T + b + (alpha / r) * x A^T B^T, with W and b frozen. B = 0 at init, so the adapted
    layer starts equal to the base layer; switched off, it is the base layer."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.lora_A = nn.Parameter(
            torch.randn(rank, base.in_features) / math.sqrt(base.in_features)
        )
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank
        self.enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return self.base(x)
        # x (W + s B A)^T + b equals x W^T + b + s x A^T B^T: one matrix product over the batch
        # instead of three
        return F.linear(
            x, self.base.weight + self.scale * self.lora_B @ self.lora_A, self.base.bias
        )

    def merged(self) -> nn.Linear:
        """One plain layer with W + (alpha / r) * B A: the same function, no adapter cost."""
        layer = copy.deepcopy(self.base)
        with torch.no_grad():
            layer.weight += self.scale * self.lora_B @ self.lora_A
        return layer


def add_lora(model: TinyLM, rank: int, alpha: float) -> TinyLM:
    """Freeze every weight of the model, then put a LoRA adapter on each linear layer of
    its blocks."""
    model.requires_grad_(False)
    for block in model.blocks:
        for name in ["qkv", "proj", "fc1", "fc2"]:
            setattr(block, name, LoRALinear(getattr(block, name), rank, alpha))
    return model


@contextmanager
def adapters_off(model: nn.Module):
    """Inside this block the LoRA model computes its frozen base: how the policy serves
    as its own reference."""
    layers = [m for m in model.modules() if isinstance(m, LoRALinear)]
    for m in layers:
        m.enabled = False
    try:
        yield
    finally:
        for m in layers:
            m.enabled = True


# --- sampling and log-probs: one distribution for sampling, recomputation and reference ---
def response_log_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """log softmax(logits / T) over the tokens a response may hold (never PAD,
    BOS or SEP). Sampling, the policy's log-probs and the reference's all use this one
    distribution, so none mismatches."""
    never = torch.tensor([PAD, BOS, SEP], device=logits.device)
    return F.log_softmax((logits / temperature).index_fill(-1, never, -1e9), -1)


@torch.no_grad()
def generate(
    lm: TinyLM,
    prompt_part: torch.Tensor,
    max_response_len: int,
    temperature: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Sample responses (B, max_response_len) from response_log_softmax, with PAD after EOS."""
    caches = [{} for _ in lm.blocks]
    h = lm.hidden(prompt_part, caches)[:, -1]
    finished = torch.zeros(len(prompt_part), dtype=torch.bool, device=prompt_part.device)
    responses = torch.full((len(prompt_part), max_response_len), PAD, device=prompt_part.device)
    for t in range(max_response_len):
        probs = response_log_softmax(lm.lm_head(h), temperature).exp()
        token = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        responses[:, t] = torch.where(finished, PAD, token)
        finished |= token == EOS
        if finished.all():
            break
        h = lm.hidden(responses[:, t : t + 1], caches, start=prompt_part.shape[1] + t)[:, -1]
    return responses


def response_mask(responses: torch.Tensor) -> torch.Tensor:
    """1 for the response's tokens up to and including its EOS, 0 for the PAD after it."""
    is_eos = (responses == EOS).long()
    return (is_eos.cumsum(1) - is_eos == 0).float()  # no EOS strictly before this position


def last_index(mask: torch.Tensor) -> torch.Tensor:
    """The index of each response's last token: its EOS, or the last position if it has none."""
    return mask.sum(1).long() - 1


def response_logprobs(logits: torch.Tensor, responses: torch.Tensor, temperature: float):
    """log pi(y_t | x, y_<t) of the sampled tokens and the entropy of pi at each response position,
    from the logits of the positions that predict them."""
    logp_all = response_log_softmax(logits, temperature)
    logprobs = logp_all.gather(-1, responses.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logprobs, entropy


# --- the math: masked statistics, KL, rewards, GAE, losses ---
def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum()


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The (population) variance of the entries of x where mask is 1."""
    return masked_mean((x - masked_mean(x, mask)) ** 2, mask)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over the masked entries; shift_mean=False keeps the mean (only rescales)."""
    whitened = (x - masked_mean(x, mask)) * torch.rsqrt(masked_var(x, mask) + 1e-8)
    return whitened if shift_mean else whitened + masked_mean(x, mask)


def kl_per_token(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str
) -> torch.Tensor:
    """Estimates of KL(pi || pi_ref) from tokens sampled from pi, one per token.
    k1 = log pi - log pi_ref (unbiased; a single one can be negative). As a reward, its
         expected policy gradient E[k1 grad log pi] is exactly grad KL.
    k3 = (r - 1) - log r, r = pi_ref / pi (unbiased value, never negative), but as a reward its
         expected gradient is not grad KL: near pi_ref it is a few percent of its size and
         points elsewhere.
    """
    log_ratio = logprobs - ref_logprobs
    return log_ratio if estimator == "k1" else torch.expm1(-log_ratio) + log_ratio


def token_rewards(
    scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float
) -> torch.Tensor:
    """r_t = -beta * KL_t on every response token, plus the score at the last token
    itself (the EOS), not one past it; so sum_t r_t = score - beta * sum_t KL_t."""
    rewards = -beta * kl * mask
    rewards[torch.arange(len(scores)), last_index(mask)] += scores
    return rewards


def token_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
):
    """A_t = sum_l (gamma*lam)^l delta_{t+l},  delta_t = r_t + gamma*V_{t+1} - V_t,
    V = 0 after the last token. Returns the advantages and the value targets A_t + V_t, both
    zero on padding."""
    rewards = rewards * mask
    values = values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(len(rewards), device=rewards.device)
    for t in reversed(range(rewards.shape[1])):
        next_values = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def ppo_clip_loss(logprobs, old_logprobs, advantages, mask, cliprange: float):
    """L = mean_t max(-A_t * ratio_t, -A_t * clip(ratio_t, 1-eps, 1+eps)),
    ratio_t = pi(y_t)/pi_old(y_t). Also returns the clip fraction, approx KL
    0.5*E[(log ratio)^2] and the mean ratio."""
    log_ratio = logprobs - old_logprobs
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - cliprange, 1 + cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).float(), mask)
    return loss, clipfrac, 0.5 * masked_mean(log_ratio**2, mask), masked_mean(ratio, mask)


def clipped_value_loss(values, old_values, returns, mask, cliprange_value: float):
    """L_V = 0.5 * mean_t max((V_t - R_t)^2, (V_old,t + clip(V_t - V_old,t, -c, c) - R_t)^2)"""
    clipped = old_values + (values - old_values).clamp(-cliprange_value, cliprange_value)
    return 0.5 * masked_mean(torch.max((values - returns) ** 2, (clipped - returns) ** 2), mask)


def bradley_terry_loss(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor) -> torch.Tensor:
    """-log P(chosen > rejected) = -log sigmoid(r_chosen - r_rejected), averaged over pairs."""
    return -F.logsigmoid(chosen_scores - rejected_scores).mean()


def dpo_loss(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta: float) -> torch.Tensor:
    """Rafailov et al. 2023: -log sigmoid(beta * (h_w - h_l)), h = log pi(y|x) - log pi_ref(y|x)
    per sequence, averaged over pairs: the Bradley-Terry loss of the implicit reward beta * h,
    whose optimum is the policy that maximizes E[r] - beta * KL(pi || pi_ref)."""
    return bradley_terry_loss(
        beta * (logp_chosen - ref_chosen), beta * (logp_rejected - ref_rejected)
    )


def adaptive_beta(
    beta: float, kl: float, kl_target: float, n_responses: int, horizon: int
) -> float:
    """Ziegler et al. 2019:
    beta <- beta * (1 + clip((KL - target) / target, -0.2, 0.2) * n / horizon)"""
    error = min(max((kl - kl_target) / kl_target, -0.2), 0.2)
    return beta * (1 + error * n_responses / horizon)


def group_baseline(scores: torch.Tensor, k: int, method: str):
    """The baseline b_i and the scale c_i of the critic-free advantage (G_t - b_i) / c_i, from the
    reward model's scores s of the K responses to one prompt (adjacent rows):
    rloo: b_i = mean_{j != i} s_j,  c_i = 1                (the baseline leaves i out)
    grpo: b_i = mean_j s_j,         c_i = std_j s_j + 1e-4  (TRL's 1e-4 keeps a near-tie near 0)
    """
    group = scores.view(-1, k)  # (prompts, K)
    if method == "rloo":
        return ((group.sum(1, keepdim=True) - group) / (k - 1)).flatten(), torch.ones_like(scores)
    scale = (group.std(1, keepdim=True) + 1e-4).expand(-1, k)
    return group.mean(1, keepdim=True).expand(-1, k).flatten(), scale.flatten()


# --- the RL stage: forward passes, rollout, advantages, update ---
def policy_and_value(
    policy: TinyLM,
    value_model: ScalarModel | None,
    tokens: torch.Tensor,
    responses: torch.Tensor,
    prompt_size: int,
    temperature: float,
):
    """log pi(y_t), entropy and V(x, y_<t) at each response position (V is None
    without a value model). The features at position prompt_size - 1 + t predict y_t; V is read
    at the same positions."""
    h = policy.hidden(tokens)[:, prompt_size - 1 : -1]
    logprobs, entropy = response_logprobs(policy.lm_head(h), responses, temperature)
    if value_model is None:
        return logprobs, entropy, None
    if value_model.trunk is not policy:  # a separate critic runs its own trunk
        h = value_model.trunk.hidden(tokens)[:, prompt_size - 1 : -1]
    return logprobs, entropy, value_model.head(h).squeeze(-1)


def score(
    reward_model: ScalarModel,
    tokens: torch.Tensor,
    prompt_size: int,
    missing_eos_penalty: float = 0.0,
):
    """The reward model's score, read at each response's last token (its EOS), minus the
    penalty if it has no EOS (PPO's rollout and the evaluation pass --missing-eos-penalty; the
    reward model learns without it)."""
    responses = tokens[:, prompt_size:]
    scores = reward_model(tokens)[
        torch.arange(len(tokens)), prompt_size + last_index(response_mask(responses))
    ]
    return scores - missing_eos_penalty * (responses != EOS).all(1)


def with_prompt(prompts: torch.Tensor) -> torch.Tensor:
    """`BOS prompt SEP`, the part every sequence starts with."""
    n = len(prompts)
    return torch.cat([prompts.new_full((n, 1), BOS), prompts, prompts.new_full((n, 1), SEP)], 1)


def reference_logprobs(policy: TinyLM, tokens, responses, prompt_size: int, temperature: float):
    """log pi_ref(y_t) of the sampled tokens: the policy with its adapters off is the SFT model."""
    with adapters_off(policy):
        logits = policy(tokens)[:, prompt_size - 1 : -1]
    return response_logprobs(logits, responses, temperature)[0]


def word_bigrams(tokens: torch.Tensor, prompt_size: int) -> list:
    """The word bigrams of each sequence's response, its first word paired with the
    prompt's last word."""
    words = [
        [row[prompt_size - 2]] + [t for t in row[prompt_size:] if t > EOS]
        for row in tokens.tolist()
    ]
    return [list(zip(w[:-1], w[1:], strict=True)) for w in words]


@torch.no_grad()
def rollout(
    policy: TinyLM,
    value_model: ScalarModel | None,
    reward_model: ScalarModel,
    prompts: torch.Tensor,
    args: Args,
    beta: float,
    generator: torch.Generator,
) -> dict:
    """Sample K responses per prompt (adjacent rows), score them, and take all the loss
    needs from the old policy."""
    prompt_part = with_prompt(prompts.repeat_interleave(args.num_generations, 0))
    prompt_size = prompt_part.shape[1]
    responses = generate(policy, prompt_part, args.max_response_len, args.temperature, generator)
    tokens = torch.cat([prompt_part, responses], 1)
    mask = response_mask(responses)
    # in minibatch-sized chunks: the update's shapes, so its first minibatch's ratio is exactly 1
    # (matrix products of another batch size round differently)
    chunks = [
        policy_and_value(
            policy, value_model, tokens[c], responses[c], prompt_size, args.temperature
        )
        for c in torch.arange(len(tokens)).split(args.batch_size // args.num_minibatches)
    ]
    old_logprobs = torch.cat([c[0] for c in chunks])
    old_values = None if value_model is None else torch.cat([c[2] for c in chunks])
    ref_logprobs = reference_logprobs(policy, tokens, responses, prompt_size, args.temperature)
    scores = score(reward_model, tokens, prompt_size, args.missing_eos_penalty)
    kl = kl_per_token(old_logprobs, ref_logprobs, args.kl_estimator) * mask
    return {
        "tokens": tokens,
        "responses": responses,
        "mask": mask,
        "old_logprobs": old_logprobs,
        "old_values": old_values,
        "scores": scores,
        "kl": kl,
        "rewards": token_rewards(scores, kl, mask, beta),
        "kl_rewards": -beta * kl,
    }


def compute_advantages(batch: dict, args: Args):
    """The one place the methods differ: each response token's advantage, and
    the value targets (gae only)."""
    rewards = batch["rewards"]
    mask = batch["mask"]
    if args.whiten_rewards:
        rewards = masked_whiten(rewards, mask, shift_mean=False) * mask
    if args.advantage == "gae":  # token GAE on the value model's V, whitened over the batch
        advantages, returns = token_gae(
            rewards, batch["old_values"], mask, args.gamma, args.gae_lambda
        )
        return masked_whiten(advantages, mask) * mask, returns
    # rloo, grpo: PPO's return from token t on, G_t = s_i - beta * sum_{t' >= t} KL_t' (GAE with
    # V = 0 and lambda = 1), minus the group's baseline, over its scale: the std scales the score
    # and the KL penalty alike, so GRPO's beta is PPO's; only the baseline and its scale differ
    kl_to_go, _ = token_gae(batch["kl_rewards"], torch.zeros_like(rewards), mask, args.gamma, 1.0)
    baseline, scale = group_baseline(batch["scores"], args.num_generations, args.advantage)
    returns_to_go = batch["scores"][:, None] + kl_to_go
    return (returns_to_go - baseline[:, None]) / scale[:, None] * mask, None


def ppo_update(
    policy: TinyLM,
    value_model: ScalarModel | None,
    optimizer: torch.optim.Optimizer,
    params: list,
    batch: dict,
    advantages: torch.Tensor,
    returns: torch.Tensor | None,
    args: Args,
    generator: torch.Generator,
    seen: set,
) -> dict:
    """PPO epochs over the batch: the clipped policy loss, plus the clipped value loss
    when there is a value model. Each minibatch's prompts are recorded in `seen`."""
    stats = []
    prompt_size = args.prompt_len + 2
    for _ in range(args.ppo_epochs):
        for idx in torch.randperm(args.batch_size, generator=generator).split(
            args.batch_size // args.num_minibatches
        ):
            mask = batch["mask"][idx]
            record_prompts(seen, batch["tokens"][idx], args.prompt_len)
            logprobs, entropy, values = policy_and_value(
                policy,
                value_model,
                batch["tokens"][idx],
                batch["responses"][idx],
                prompt_size,
                args.temperature,
            )
            pg_loss, clipfrac, approxkl, ratio = ppo_clip_loss(
                logprobs, batch["old_logprobs"][idx], advantages[idx], mask, args.cliprange
            )
            vf_loss = torch.zeros(())
            if value_model is not None:
                vf_loss = clipped_value_loss(
                    values, batch["old_values"][idx], returns[idx], mask, args.cliprange_value
                )
            loss = pg_loss + args.vf_coef * vf_loss
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, args.max_grad_norm)
            optimizer.step()
            stats.append(
                [
                    pg_loss.item(),
                    vf_loss.item(),
                    clipfrac.item(),
                    approxkl.item(),
                    ratio.item(),
                    masked_mean(entropy, mask).item(),
                ]
            )
    # TRL's names; policy/entropy_avg is the exact per-token entropy
    names = [
        "loss/policy_avg",
        "loss/value_avg",
        "policy/clipfrac_avg",
        "policy/approxkl_avg",
        "val/ratio",
        "policy/entropy_avg",
    ]
    return {
        name: float(v)
        for name, v in zip(names, np.mean(stats, 0), strict=True)
        if value_model or name != "loss/value_avg"
    }


# --- DPO: the reward model's preference pairs, learned without a reward model or sampling ---
def sequence_logprobs(model: TinyLM, tokens: torch.Tensor, prompt_size: int, temperature: float):
    """log pi(y|x) = sum_t log pi(y_t | x, y_<t) over each response's tokens, EOS included."""
    responses = tokens[:, prompt_size:]
    logprobs, _ = response_logprobs(model(tokens)[:, prompt_size - 1 : -1], responses, temperature)
    return (logprobs * response_mask(responses)).sum(1)


def train_dpo(policy: TinyLM, optimizer, params: list, pairs: tuple, args: Args, generator, seen):
    """DPO on the pairs (chosen, rejected) that trained the reward model, from the SFT model + LoRA,
    with the SFT model (adapters off) as the reference; the learning rate as PPO's."""
    prompt_size = args.prompt_len + 2
    with torch.no_grad(), adapters_off(policy):
        ref = [sequence_logprobs(policy, t, prompt_size, args.temperature) for t in pairs]
    steps = [
        idx
        for _ in range(args.dpo_epochs)
        for idx in torch.randperm(len(pairs[0]), generator=generator).split(args.rm_batch_size)
    ]
    for step, idx in enumerate(steps):
        if args.anneal_lr:
            optimizer.param_groups[0]["lr"] = args.learning_rate * (1 - step / len(steps))
        for t in pairs:
            record_prompts(seen, t[idx], args.prompt_len)
        logp = [sequence_logprobs(policy, t[idx], prompt_size, args.temperature) for t in pairs]
        loss = dpo_loss(logp[0], logp[1], ref[0][idx], ref[1][idx], args.beta)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, args.max_grad_norm)
        optimizer.step()
    print(f"dpo: {len(steps)} steps, last loss {loss.item():.4f}")


# --- evaluation on held-out prompts, and the best-of-n frontier, each with its own generator ---
@torch.no_grad()
def evaluate(
    policy: TinyLM,
    reward_model: ScalarModel,
    language: ToyLanguage,
    prompts: torch.Tensor,
    args: Args,
    seen_bigrams: set,
) -> dict:
    """Sample one response per prompt, with the same sampling noise at every evaluation, and
    measure it: gold (and its standard error over the prompts), proxy, KL to the reference,
    length, and two signs of hacking: the share of response bigrams the reward model never saw in
    its training pairs, and the share of prompts that get the most common response."""
    # not training's: evaluating never moves it
    generator = torch.Generator().manual_seed(args.seed + 10_007)
    prompt_part = with_prompt(prompts)
    prompt_size = prompt_part.shape[1]
    responses = generate(policy, prompt_part, args.max_response_len, args.temperature, generator)
    tokens = torch.cat([prompt_part, responses], 1)
    mask = response_mask(responses)
    logprobs, _ = response_logprobs(
        policy(tokens)[:, prompt_size - 1 : -1], responses, args.temperature
    )
    ref_logprobs = reference_logprobs(policy, tokens, responses, prompt_size, args.temperature)
    gold = language.gold_score(prompts.numpy(), responses.numpy())
    words = [[t for t in r.tolist() if t > EOS] for r in responses]
    bigrams = [b for seq in word_bigrams(tokens, prompt_size) for b in seq]
    texts = Counter(to_text(r) for r in responses.tolist())
    return {
        "gold_score": float(gold.mean()),
        "gold_std": float(gold.std()),
        "gold_se": float(gold.std(ddof=1) / math.sqrt(len(gold))),
        "proxy_score": float(
            score(reward_model, tokens, prompt_size, args.missing_eos_penalty).mean()
        ),
        # sequence-level KL(pi || pi_ref), k1
        "kl": float(((logprobs - ref_logprobs) * mask).sum(1).mean()),
        "length": float(mask.sum(1).mean()),
        "eos_rate": float((responses == EOS).any(1).float().mean()),
        "distinct_ratio": float(np.mean([len(set(w)) / len(w) for w in words if w] or [0.0])),
        "unseen_bigrams": float(np.mean([b not in seen_bigrams for b in bigrams]))
        if bigrams
        else 0.0,
        "top_response_share": texts.most_common(1)[0][1] / len(prompts),
        "samples": [
            f"{to_text(p)} | {to_text(r)}"
            for p, r in zip(prompts[:3].tolist(), responses[:3].tolist(), strict=True)
        ],
    }


def evaluate_splits(policy, reward_model, language, splits, args, seen_bigrams, trainside=False):
    """evaluate() on the held-out and the validation prompts (and on the training part's)."""
    names = ["heldout", "validation"] + ["train"] * trainside
    return {
        name: evaluate(policy, reward_model, language, splits[name], args, seen_bigrams)
        for name in names
    }


def history_row(update: int, evals: dict) -> dict:
    """One point of the training curve: the held-out figures, and validation's gold, proxy, KL."""
    row = {k: v for k, v in evals["heldout"].items() if k != "samples"}
    for k in ["gold_score", "proxy_score", "kl"]:
        row[f"validation_{k}"] = evals["validation"][k]
    return {"update": update, **row}


def eval_metrics(evals: dict) -> dict:
    """wandb's eval/... (held out) and validation/... figures."""
    row = history_row(0, evals)
    return {
        (k.replace("validation_", "validation/") if "validation_" in k else f"eval/{k}"): v
        for k, v in row.items()
        if k != "update"
    }


def eval_line(evals: dict) -> str:
    ev = evals["heldout"]
    return (
        f"gold={ev['gold_score']:.3f}, validation_gold={evals['validation']['gold_score']:.3f}, "
        f"proxy={ev['proxy_score']:.3f}, kl={ev['kl']:.3f}, length={ev['length']:.2f}, "
        f"eos_rate={ev['eos_rate']:.2f}, samples: {ev['samples']}"
    )


@torch.no_grad()
def best_of_n(
    sft: TinyLM, reward_model: ScalarModel, language: ToyLanguage, prompts: torch.Tensor, args: Args
) -> list:
    """Best-of-n from the SFT policy (Gao et al. 2022), computed exactly for q, the empirical
    distribution of M = --best-of-n-samples SFT samples per prompt. Rank a prompt's distinct
    responses by the proxy, r_1 < ... < r_m, with Q_j = q_1 + ... + q_j; the best of n draws
    from q is response j with probability pi_n(j) = Q_j^n - Q_{j-1}^n, so
        KL(pi_n || q) = sum_j pi_n(j) log(pi_n(j) / q_j),    gold_n = sum_j pi_n(j) gold_j.
    The familiar log n - (n - 1) / n is only a bound: it assumes no response has noticeable
    probability, and here the likeliest response to a prompt can have several percent."""
    generator = torch.Generator().manual_seed(args.seed + 10_008)
    m = args.best_of_n_samples
    prompt_part = with_prompt(prompts)
    repeated = prompt_part.repeat_interleave(m, 0)
    responses = torch.cat(
        [
            generate(sft, part, args.max_response_len, args.temperature, generator)
            for part in repeated.split(8192)  # in chunks: the KV cache of all of them is large
        ]
    )
    # each prompt's distinct responses, with how often each was drawn (sorted by prompt)
    rows = torch.cat([torch.arange(len(prompts)).repeat_interleave(m)[:, None], responses], 1)
    distinct, counts = torch.unique(rows, dim=0, return_counts=True)
    prompt_of = distinct[:, 0]
    tokens = torch.cat([prompt_part[prompt_of], distinct[:, 1:]], 1)
    proxy = torch.cat(
        [
            score(reward_model, chunk, prompt_part.shape[1], args.missing_eos_penalty)
            for chunk in tokens.split(4096)
        ]
    ).numpy()
    gold = language.gold_score(prompts[prompt_of].numpy(), distinct[:, 1:].numpy())
    ns = [2**i for i in range(int(math.log2(args.best_of_n)) + 1)]  # n = 1, 2, 4, ...
    totals = np.zeros((len(ns), 3))  # KL, gold, proxy, summed over prompts
    starts = np.searchsorted(prompt_of.numpy(), np.arange(len(prompts) + 1))
    for begin, end in zip(starts[:-1], starts[1:], strict=True):
        order = begin + np.argsort(proxy[begin:end])
        q = counts[order].numpy() / m
        upper = np.cumsum(q)  # Q_j
        for i, n in enumerate(ns):
            pi = upper**n - (upper - q) ** n
            kl = np.sum(pi * np.log(np.maximum(pi, 1e-300) / q))  # 0 log 0 = 0
            totals[i] += [kl, pi @ gold[order], pi @ proxy[order]]
    totals /= len(prompts)
    return [
        {
            "n": n,
            "kl": float(kl),
            "gold": float(gold_n),
            "proxy": float(proxy_n),
            "kl_bound": math.log(n) - (n - 1) / n,
        }
        for n, (kl, gold_n, proxy_n) in zip(ns, totals, strict=True)
    ]


# --- the three stages ---
def training_prompts(language, rng, n: int, args: Args) -> torch.Tensor:
    """n prompts from the training part of the split."""
    return torch.from_numpy(language.prompts(rng, n, args.prompt_len, "train"))


def record_prompts(seen: set, tokens: torch.Tensor, prompt_len: int):
    """Add the prompts of sequences `BOS prompt SEP ...` to `seen` as they enter a training loss
    (SFT, reward model, policy, DPO): heldout_overlap checks the evaluation's prompts against it."""
    seen.update(map(tuple, tokens[:, 1 : prompt_len + 1].tolist()))


def train_sft(args: Args, language: ToyLanguage, rng, seen: set, start_time: float):
    """Stage 1: SFT on the true language: next-token cross-entropy on the response tokens (EOS
    included, PAD not), lr decayed linearly to 0."""
    sft = TinyLM(
        len(VOCAB),
        args.prompt_len + 2 + args.max_response_len,
        args.d_model,
        args.n_layer,
        args.n_head,
    )
    optimizer = torch.optim.Adam(sft.parameters(), lr=args.sft_learning_rate)
    for step in range(args.sft_steps):
        prompts = training_prompts(language, rng, args.sft_batch_size, args)
        responses = language.respond(rng, prompts.numpy(), args.max_response_len)
        prompt_part = with_prompt(prompts)
        tokens = torch.cat([prompt_part, torch.from_numpy(responses)], 1)
        # the loss is on the response only: the prompt's words are random, nothing to learn
        targets = tokens[:, 1:].clone()
        targets[:, : prompt_part.shape[1] - 1] = PAD
        # linear decay to 0
        optimizer.param_groups[0]["lr"] = args.sft_learning_rate * (1 - step / args.sft_steps)
        record_prompts(seen, tokens, args.prompt_len)
        sft_loss = F.cross_entropy(
            sft(tokens[:, :-1]).flatten(0, 1), targets.flatten(), ignore_index=PAD
        )
        optimizer.zero_grad()
        sft_loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == args.sft_steps - 1:
            print(
                f"sft_step={step}, sft_loss={sft_loss.item():.4f}, "
                f"seconds={time.time() - start_time:.1f}"
            )
    return sft.requires_grad_(False), sft_loss.item()


def preference_pairs(
    sft: TinyLM,
    language: ToyLanguage,
    prompts: torch.Tensor,
    args: Args,
    rng: np.random.Generator,
    generator: torch.Generator,
):
    """Two SFT responses per prompt, sampled as the policy will be (--temperature), and the
    rater's choice: P(a > b) = sigmoid((gold(a) - gold(b)) / tau). Returns the chosen and the
    rejected sequences and the gold margin, gold(chosen) - gold(rejected)."""
    prompt_part = with_prompt(prompts)
    a = generate(sft, prompt_part, args.max_response_len, args.temperature, generator)
    b = generate(sft, prompt_part, args.max_response_len, args.temperature, generator)
    gold_a = language.gold_score(prompts.numpy(), a.numpy())
    gold_b = language.gold_score(prompts.numpy(), b.numpy())
    p_a_wins = 1 / (1 + np.exp(-(gold_a - gold_b) / args.rm_label_temperature))
    a_wins = torch.from_numpy(rng.random(len(prompts)) < p_a_wins)[:, None]
    chosen = torch.cat([prompt_part, torch.where(a_wins, a, b)], 1)
    rejected = torch.cat([prompt_part, torch.where(a_wins, b, a)], 1)
    gold_margin = torch.from_numpy(gold_a - gold_b) * (2 * a_wins[:, 0].double() - 1)
    return chosen, rejected, gold_margin


def merge_lora(model: TinyLM) -> TinyLM:
    """Each LoRA layer replaced by one plain layer with W + (alpha / r) B A: the same function,
    without the adapter's cost (for a model that no longer trains)."""
    for block in model.blocks:
        for name in ["qkv", "proj", "fc1", "fc2"]:
            setattr(block, name, getattr(block, name).merged())
    return model


def train_reward_model(
    sft: TinyLM,
    args: Args,
    language: ToyLanguage,
    rng: np.random.Generator,
    generator: torch.Generator,
    seen: set,
    start_time: float,
):
    """Stage 2: a Bradley-Terry reward model (SFT + LoRA + a scalar head) on rater-labelled
    pairs of SFT samples. Returns it frozen, merged and normalized (SFT samples score mean 0,
    std 1), its accuracy on pairs of held-out prompts, the bigrams it saw and its pairs."""
    prompt_size = args.prompt_len + 2
    reward_model = ScalarModel(
        add_lora(copy.deepcopy(sft), args.lora_rank, args.lora_alpha), args.d_model
    )
    prompts = training_prompts(language, rng, args.rm_num_pairs, args)
    chosen, rejected, _ = preference_pairs(sft, language, prompts, args, rng, generator)
    optimizer = torch.optim.Adam(
        [p for p in reward_model.parameters() if p.requires_grad], lr=args.rm_learning_rate
    )
    for _ in range(args.rm_epochs):
        for idx in torch.randperm(args.rm_num_pairs, generator=generator).split(args.rm_batch_size):
            for pairs in (chosen[idx], rejected[idx]):
                record_prompts(seen, pairs, args.prompt_len)
            rm_loss = bradley_terry_loss(
                score(reward_model, chosen[idx], prompt_size),
                score(reward_model, rejected[idx], prompt_size),
            )
            optimizer.zero_grad()
            rm_loss.backward()
            optimizer.step()
    reward_model.requires_grad_(False)
    merge_lora(reward_model.trunk)
    with torch.no_grad():
        # accuracy on pairs of held-out prompts, against the gold order (the raters' noise removed)
        test_prompts = torch.from_numpy(language.prompts(rng, 1000, args.prompt_len, "heldout"))
        test_chosen, test_rejected, gold_margin = preference_pairs(
            sft, language, test_prompts, args, rng, generator
        )
        chosen_scores = score(reward_model, test_chosen, prompt_size)
        rejected_scores = score(reward_model, test_rejected, prompt_size)
        agree = (chosen_scores > rejected_scores) == (gold_margin > 0)
        rm_accuracy = float(agree[gold_margin != 0].float().mean())
        # normalize: SFT samples score mean 0, std 1 (folded into the head)
        sft_scores = torch.cat([chosen_scores, rejected_scores])
        reward_model.head.weight /= sft_scores.std()
        reward_model.head.bias.copy_(
            (reward_model.head.bias - sft_scores.mean()) / sft_scores.std()
        )
    print(
        f"reward model: {args.rm_num_pairs} pairs, last loss {rm_loss.item():.4f}, "
        f"accuracy vs gold on held-out prompts {rm_accuracy:.3f}, "
        f"seconds={time.time() - start_time:.1f}"
    )
    seen_bigrams = {
        b for t in (chosen, rejected) for seq in word_bigrams(t, prompt_size) for b in seq
    }
    return reward_model, rm_accuracy, seen_bigrams, (chosen, rejected)


# the settings stages 1 and 2 depend on: stages built with them can serve any stage 3
STAGE_FIELDS = [
    "seed",
    "prompt_len",
    "max_response_len",
    "d_model",
    "n_layer",
    "n_head",
    "sft_steps",
    "sft_batch_size",
    "sft_learning_rate",
    "rm_num_pairs",
    "rm_label_temperature",
    "rm_epochs",
    "rm_batch_size",
    "rm_learning_rate",
    "lora_rank",
    "lora_alpha",
    "temperature",
]


def sft_and_reward_model(args: Args, start_time: float | None = None) -> dict:
    """Stages 1 and 2, from generators of their own: the language, the SFT model, the reward
    model, and every prompt they trained on."""
    start_time = time.time() if start_time is None else start_time
    torch.set_num_threads(1)  # as in main(): another thread count rounds the training otherwise
    torch.manual_seed(args.seed)
    # the language's samples and the raters' noise; the sampling of responses and minibatches
    rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    language = ToyLanguage(args.seed)
    seen_prompts = set()
    sft, sft_loss = train_sft(args, language, rng, seen_prompts, start_time)
    reward_model, rm_accuracy, seen_bigrams, pairs = train_reward_model(
        sft, args, language, rng, generator, seen_prompts, start_time
    )
    return {
        "settings": {name: getattr(args, name) for name in STAGE_FIELDS},
        "language": language,
        "sft": sft,
        "sft_loss": sft_loss,
        "reward_model": reward_model,
        "rm_accuracy": rm_accuracy,
        "seen_bigrams": seen_bigrams,
        "seen_prompts": seen_prompts,
        "pairs": pairs,
    }


def make_value_model(args: Args, policy: TinyLM, reward_model: ScalarModel) -> ScalarModel | None:
    """gae's critic: a copy of the reward model with new LoRA adapters (B = 0: it starts as the
    reward model) whose adapters and head train, or a head on the policy's own trunk. rloo and
    grpo and DPO have none."""
    if args.advantage != "gae" or args.dpo:
        return None
    if args.value_model == "shared":
        value_model = ScalarModel(policy, args.d_model)
    else:
        trunk = add_lora(copy.deepcopy(reward_model.trunk), args.lora_rank, args.lora_alpha)
        value_model = ScalarModel(trunk, args.d_model)
    # V starts as the reward model's head
    value_model.head.load_state_dict(reward_model.head.state_dict())
    for name, p in value_model.named_parameters():
        p.requires_grad_("lora_" in name or name.startswith("head."))
    return value_model


def log_update(batch: dict, beta: float, optimizer, update_metrics: dict) -> dict:
    """The rollout's and the update's figures, with TRL's metric names and meanings."""
    kl = batch["kl"].sum(1)
    scores = batch["scores"]
    non_score_reward = float((-beta * kl).mean())  # -beta * KL per response, never whitened
    return {
        "objective/kl": float(kl.mean()),
        # sum_t -log pi
        "objective/entropy": float((-batch["old_logprobs"] * batch["mask"]).sum(1).mean()),
        "objective/non_score_reward": non_score_reward,
        "objective/scores": float(scores.mean()),
        "objective/rlhf_reward": float(scores.mean()) + non_score_reward,
        "objective/beta": beta,
        "lr": optimizer.param_groups[0]["lr"],
        **update_metrics,
    }


def main(args: Args, stages: dict | None = None) -> dict:
    """The whole run; `stages` from sft_and_reward_model(args) skips stages 1 and 2 (the same
    result as without it: stage 3 draws from generators of its own)."""
    check_args(args)
    start_time = time.time()
    run_name = f"{args.exp_name}__{args.seed}__{int(time.time())}"
    if args.track:
        import wandb

        wandb.init(
            project=args.wandb_project_name,
            entity=args.wandb_entity,
            config=asdict(args),
            name=run_name,
        )
    # One thread: a row's matrix products round the same whatever rows share its minibatch, which
    # is what lets the first PPO minibatch see a ratio of exactly 1.
    torch.set_num_threads(1)

    # --- stages 1 and 2: SFT, then a reward model from pairs of SFT samples labelled by the gold
    # raters ---
    if stages is None:
        stages = sft_and_reward_model(args, start_time)
    if stages["settings"] != {name: getattr(args, name) for name in STAGE_FIELDS}:
        raise UsageError("these stages were trained with other settings: build them from args")
    language = stages["language"]
    sft = stages["sft"]
    reward_model = stages["reward_model"]
    seen_prompts = set(stages["seen_prompts"])

    # --- stage 3, from generators of its own: policy = SFT + LoRA (B = 0: equal to SFT at the
    # start); reference = the policy with its adapters off; the reward model frozen; a value
    # model only for gae ---
    torch.manual_seed(args.seed + 1)
    rng = np.random.default_rng(args.seed + 1)  # the prompts
    generator = torch.Generator().manual_seed(args.seed + 1)  # responses and minibatches
    policy = add_lora(copy.deepcopy(sft), args.lora_rank, args.lora_alpha)
    value_model = make_value_model(args, policy, reward_model)
    trainable = [
        p for m in [policy, value_model] if m is not None for p in m.parameters() if p.requires_grad
    ]
    # a shared critic's trunk is the policy's: once
    params = list({id(p): p for p in trainable}.values())
    optimizer = torch.optim.Adam(params, lr=args.learning_rate, eps=1e-5)

    # the evaluation's prompts, from a generator of their own: held out and validation (never
    # drawn for any stage), and, for the generalization gap, as many from the training part
    eval_rng = np.random.default_rng(args.seed + 2)
    splits = {
        name: torch.from_numpy(language.prompts(eval_rng, args.eval_prompts, args.prompt_len, name))
        for name in ["heldout", "validation", "train"]
    }
    seen_bigrams = stages["seen_bigrams"]
    sft_evals = evaluate_splits(policy, reward_model, language, splits, args, seen_bigrams)  # SFT
    print(f"SFT on held-out prompts: {eval_line(sft_evals)}")
    beta = args.beta
    history = []
    updates = 0 if args.dpo else args.num_updates  # DPO learns offline: no rollouts
    if args.dpo:  # --- DPO instead of RL: the same pairs, the same beta, two models ---
        train_dpo(policy, optimizer, params, stages["pairs"], args, generator, seen_prompts)
    ppo_start = time.time()
    for update in range(1, updates + 1):
        if args.anneal_lr:  # lr_k = lr * (1 - (k-1)/K)
            for group in optimizer.param_groups:
                group["lr"] = args.learning_rate * (1 - (update - 1) / args.num_updates)
        prompts = training_prompts(language, rng, args.batch_size // args.num_generations, args)
        batch = rollout(policy, value_model, reward_model, prompts, args, beta, generator)
        advantages, returns = compute_advantages(batch, args)
        update_metrics = ppo_update(
            policy,
            value_model,
            optimizer,
            params,
            batch,
            advantages,
            returns,
            args,
            generator,
            seen_prompts,
        )
        metrics = log_update(batch, beta, optimizer, update_metrics)
        if args.kl_target is not None:
            beta = adaptive_beta(
                beta, metrics["objective/kl"], args.kl_target, args.batch_size, args.kl_horizon
            )
        global_step = update * args.batch_size  # responses sampled so far
        sps = int(global_step / (time.time() - ppo_start))  # responses per second of PPO
        print(f"global_step={global_step}, episodic_return={metrics['objective/rlhf_reward']:.4f}")
        if update % args.eval_every == 0 and update < updates:
            evals = evaluate_splits(policy, reward_model, language, splits, args, seen_bigrams)
            history.append(history_row(update, evals))
            metrics.update(eval_metrics(evals))
            if args.track:
                metrics["eval/samples"] = wandb.Table(
                    columns=["prompt | response"], data=[[s] for s in evals["heldout"]["samples"]]
                )
            print(f"update={update}, SPS={sps}, beta={beta:.4f}, {eval_line(evals)}")
        if args.track:
            wandb.log({**metrics, "charts/SPS": sps}, step=global_step)

    # --- the final policy and SFT on each part of the split; best-of-n from SFT ---
    sps = f"SPS={int(updates * args.batch_size / (time.time() - ppo_start))}, " if updates else ""
    evals = evaluate_splits(
        policy, reward_model, language, splits, args, seen_bigrams, trainside=True
    )
    history.append(history_row(updates, evals))
    print(f"update={updates}, {sps}beta={beta:.4f}, {eval_line(evals)}")
    if args.track:
        wandb.log(eval_metrics(evals), step=updates * args.batch_size)
    method = "dpo" if args.dpo else {"gae": "ppo", "rloo": "rloo", "grpo": "grpo"}[args.advantage]
    with adapters_off(policy):
        sft_trainside = evaluate(
            policy, reward_model, language, splits["train"], args, seen_bigrams
        )
    frontier = []
    if args.best_of_n:
        bon_prompts = splits["heldout"][: args.best_of_n_prompts]
        frontier = best_of_n(sft, reward_model, language, bon_prompts, args)
    # the share of the held-out and validation prompts that entered any training loss
    heldout_overlap = float(
        np.mean([p in seen_prompts for p in map(tuple, splits["heldout"].tolist())])
    )
    validation_overlap = float(
        np.mean([p in seen_prompts for p in map(tuple, splits["validation"].tolist())])
    )
    print(f"{'':>24} {'gold':>8} {'proxy':>8} {'kl':>8} {'length':>8} {'eos':>6}")
    rows = [
        ("SFT, held out", sft_evals["heldout"]),
        (f"{method.upper()}, held out", evals["heldout"]),
    ]
    rows += [
        ("SFT, training side", sft_trainside),
        (f"{method.upper()}, training side", evals["train"]),
    ]
    for name, e in rows:
        print(
            f"{name:>24} {e['gold_score']:8.3f} {e['proxy_score']:8.3f} {e['kl']:8.3f} "
            f"{e['length']:8.2f} {e['eos_rate']:6.2f}"
        )
    for row in frontier:
        print(
            f"{'best-of-' + str(row['n']):>24} {row['gold']:8.3f} {row['proxy']:8.3f} "
            f"{row['kl']:8.3f} (bound {row['kl_bound']:.3f})"
        )
    print(f"heldout_overlap={heldout_overlap}, validation_overlap={validation_overlap}")
    if args.track:
        wandb.finish()
    ev = evals["heldout"]
    sft_eval = sft_evals["heldout"]
    return {
        "method": method,
        # policy, reference, reward model (and value model); DPO: policy and reference
        "models": 2 if args.dpo else 4 if value_model is not None else 3,
        "sft_loss": round(stages["sft_loss"], 4),
        "rm_accuracy": stages["rm_accuracy"],
        "gold_gain_in_sft_std": (ev["gold_score"] - sft_eval["gold_score"]) / sft_eval["gold_std"],
        "validation_gain_in_sft_std": (
            evals["validation"]["gold_score"] - sft_evals["validation"]["gold_score"]
        )
        / sft_evals["validation"]["gold_std"],
        # training side minus held out: what the policy gained on prompts like its training ones
        # but not on new ones (SFT's own gap, which is noise only, beside it)
        "generalization_gap": evals["train"]["gold_score"] - ev["gold_score"],
        "sft_generalization_gap": sft_trainside["gold_score"] - sft_eval["gold_score"],
        "heldout_overlap": heldout_overlap,
        "validation_overlap": validation_overlap,
        "sft": sft_eval,
        "final": ev,  # the trained policy on the held-out prompts
        "sft_validation": sft_evals["validation"],
        "final_validation": evals["validation"],
        "sft_trainside": sft_trainside,
        "final_trainside": evals["train"],
        "history": history,
        "best_of_n": frontier,
        "wall_seconds": round(time.time() - start_time, 2),
    }


if __name__ == "__main__":
    cli_args = tyro.cli(Args)
    try:
        print(json.dumps(main(cli_args)))
    except UsageError as e:
        raise SystemExit(f"ppo_rlhf_toy.py: error: {e}") from None
