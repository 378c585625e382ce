"""RLHF on a toy language, end to end on a CPU: SFT, a reward model from preferences, PPO.

The last chapter: ppo.py applied to a language model. A response is an episode, each token an
action, and the only reward is a learned reward model's score at the end. Three stages:
(1) SFT: a tiny transformer learns a hidden "true language"; (2) a reward model learns from
pairs of SFT samples labelled by a hidden gold scorer (the stand-in for human raters);
(3) PPO with four models (frozen reference, LoRA policy, frozen reward model, value model) and
a per-token KL penalty that keeps the policy near the reference. `--beta 0` shows why:
the policy over-optimizes the learned proxy while the gold score falls.

Beside PPO, the critic-free road (three models): `--advantage rloo` and `--advantage grpo`
replace the value model by a baseline from the other responses to the same prompt, with the same
PPO-clip update and per-token KL reward, so only the baseline differs. The canonical RLOO
(Ahmadian et al. 2024) puts the KL in the reward per sequence; GRPO (Shao et al. 2024) puts a k3
KL term in the loss and averages each response's loss over its length, which Dr. GRPO (Liu et
al. 2025) drops with the division by the group's std. Best-of-n from SFT is the frontier (Gao et
al. 2022).

    python ppo_rlhf_toy.py
    python ppo_rlhf_toy.py --advantage grpo
    python ppo_rlhf_toy.py --beta 0 --rm-num-pairs 200
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
    prompt_len: int = 3
    """words per prompt"""
    max_response_len: int = 10
    """the most tokens a response may have, EOS included (without EOS by then: truncated)"""
    d_model: int = 64
    """the transformer's width"""
    n_layer: int = 2
    """the number of transformer blocks"""
    n_head: int = 4
    """the number of attention heads"""

    # Stage 1: SFT
    sft_steps: int = 600
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
    """pairs per reward-model step"""
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
    num_generations: int = 4
    """K, responses sampled per prompt: a batch holds batch-size / K prompts (rloo, grpo: K >= 2)"""
    num_updates: int = 60
    """PPO updates (each samples one batch of responses)"""
    batch_size: int = 256
    """responses per PPO update"""
    num_minibatches: int = 4
    """minibatches per PPO epoch"""
    ppo_epochs: int = 4
    """passes over each batch of responses"""
    learning_rate: float = 3e-3
    """the learning rate of the policy's LoRA and the value model"""
    anneal_lr: bool = True
    """if toggled, the PPO learning rate decays linearly to 0 over the updates (as in TRL)"""
    temperature: float = 1.0
    """sampling temperature; it also divides the policy's and the reference's logits"""
    beta: float = 0.3
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
    """held-out prompts of each evaluation"""
    best_of_n: int = 64
    """the largest n of the best-of-n frontier from SFT (n = 1, 2, 4, ... up to it); 0 skips it"""


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
    ]:
        # the gain is in units of the SFT samples' gold std
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
    for name in ["temperature", "rm_label_temperature"] + ["kl_target"] * (
        args.kl_target is not None
    ):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    for name in ["beta", "best_of_n"]:
        if getattr(args, name) < 0:
            raise UsageError(
                f"--{name.replace('_', '-')} must be >= 0 (0: none), got {getattr(args, name)}"
            )
    if args.kl_target is not None and args.beta == 0:
        raise UsageError(
            "--kl-target needs --beta > 0 to start from: the controller multiplies beta, "
            "so 0 stays 0"
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


class ToyLanguage:
    """Sequences `BOS prompt SEP response EOS PAD...`. Words follow a sparse random bigram
    chain (each word has 4 possible successors); the response continues the prompt's chain, and its
    chance to end grows with its length: P(EOS after i words) = sigmoid(i - 4).

    gold(response) = mean valence of its distinct words
                     + 0.5 * mean log P_true(bigram) - 2 * [no EOS]
    Valence rewards some words, fluency rewards the true language's word order; a response
    that repeats one good word is not fluent, which a reward model that only ever saw fluent
    SFT samples cannot know.
    """

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        n = len(WORDS)
        self.valence = rng.uniform(-1.0, 1.0, n)
        self.bigram = np.zeros((n, n))  # P(next word | word), 4 successors each
        for w in range(n):
            successors = rng.choice(n, 4, replace=False)
            self.bigram[w, successors] = rng.dirichlet(np.ones(4))
        # smoothed: an impossible bigram costs about log(1e-3)
        self.log_bigram = np.log(self.bigram + 1e-3)

    def sample(self, rng: np.random.Generator, n: int, prompt_len: int, max_response_len: int):
        """n prompts (n, prompt_len) and the true language's responses to them
        (n, max_response_len)."""
        words = np.zeros((n, prompt_len + max_response_len), np.int64)  # word indices, 0..15
        words[:, 0] = rng.integers(0, len(WORDS), n)
        responses = np.full((n, max_response_len), PAD)
        ended = np.zeros(n, bool)
        for t in range(1, prompt_len + max_response_len):
            cdf = self.bigram[words[:, t - 1]].cumsum(1)
            words[:, t] = np.minimum((rng.random((n, 1)) > cdf).sum(1), len(WORDS) - 1)
            i = t - prompt_len  # the response position being written
            if i >= 0:
                eos_now = ~ended & (rng.random(n) < 1 / (1 + math.exp(-(i - 4))))
                responses[:, i] = np.where(ended, PAD, np.where(eos_now, EOS, words[:, t] + 4))
                ended |= eos_now
        return words[:, :prompt_len] + 4, responses

    def gold_score(self, prompts: np.ndarray, responses: np.ndarray) -> np.ndarray:
        """The hidden human's score of each response (formula above; an empty response
        has valence -1)."""
        scores = np.zeros(len(prompts))
        for j, (prompt, response) in enumerate(zip(prompts, responses, strict=True)):
            has_eos = EOS in response
            words = [
                t - 4 for t in response[: list(response).index(EOS) if has_eos else len(response)]
            ]
            valence = self.valence[list(set(words))].mean() if words else -1.0
            chain = [prompt[-1] - 4] + words
            fluency = (
                np.mean([self.log_bigram[a, b] for a, b in zip(chain[:-1], chain[1:], strict=True)])
                if words
                else 0.0
            )
            scores[j] = valence + 0.5 * fluency - 2.0 * (not has_eos)
        return scores


def to_text(tokens) -> str:
    return " ".join(VOCAB[t] for t in tokens if t != PAD)


# --- the model: a tiny causal transformer (pre-LN, no dropout) with a KV cache for sampling ---
class Block(nn.Module):
    def __init__(self, d_model: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv, self.proj = nn.Linear(d_model, 3 * d_model), nn.Linear(d_model, d_model)
        self.fc1, self.fc2 = nn.Linear(d_model, 4 * d_model), nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (
            z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            for z in self.qkv(self.ln1(x)).split(C, -1)
        )
        if cache is not None:  # KV cache: prepend the keys and values of the positions already seen
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        # T > 1 only for a whole sequence or a prompt into an empty cache: causal mask; one new
        # token may attend to every cached position.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyLM(nn.Module):
    def __init__(self, vocab_size: int, max_len: int, d_model: int, n_layer: int, n_head: int):
        super().__init__()
        self.tok_emb, self.pos_emb = (
            nn.Embedding(vocab_size, d_model),
            nn.Embedding(max_len, d_model),
        )
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
        self.trunk, self.head = trunk, nn.Linear(d_model, 1)

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
        self.scale, self.enabled = alpha / rank, True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        return out + self.scale * (x @ self.lora_A.T) @ self.lora_B.T if self.enabled else out

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
    unclipped, clipped = (
        -advantages * ratio,
        -advantages * ratio.clamp(1 - cliprange, 1 + cliprange),
    )
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


def adaptive_beta(
    beta: float, kl: float, kl_target: float, n_responses: int, horizon: int
) -> float:
    """Ziegler et al. 2019:
    beta <- beta * (1 + clip((KL - target) / target, -0.2, 0.2) * n / horizon)"""
    error = min(max((kl - kl_target) / kl_target, -0.2), 0.2)
    return beta * (1 + error * n_responses / horizon)


def group_advantages(scores: torch.Tensor, k: int, method: str) -> torch.Tensor:
    """Critic-free advantages of the reward model's scores s of responses in
    groups of K to one prompt (adjacent):
    rloo: A_i = s_i - mean_{j != i} s_j                 (the other K-1: the baseline leaves i out)
    grpo: A_i = (s_i - mean_j s_j) / (std_j s_j + 1e-8)  (the whole group's mean and std)
    """
    group = scores.view(-1, k)  # (prompts, K)
    if method == "rloo":
        return (group - (group.sum(1, keepdim=True) - group) / (k - 1)).flatten()
    return ((group - group.mean(1, keepdim=True)) / (group.std(1, keepdim=True) + 1e-8)).flatten()


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
    prompt_part, prompt_size = (
        with_prompt(prompts.repeat_interleave(args.num_generations, 0)),
        prompts.shape[1] + 2,
    )
    responses = generate(policy, prompt_part, args.max_response_len, args.temperature, generator)
    tokens, mask = torch.cat([prompt_part, responses], 1), response_mask(responses)
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
    with adapters_off(policy):
        ref_logprobs, _ = response_logprobs(
            policy(tokens)[:, prompt_size - 1 : -1], responses, args.temperature
        )
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
    rewards, mask = batch["rewards"], batch["mask"]
    if args.whiten_rewards:
        rewards = masked_whiten(rewards, mask, shift_mean=False) * mask
    if args.advantage == "gae":  # token GAE on the value model's V, whitened over the batch
        advantages, returns = token_gae(
            rewards, batch["old_values"], mask, args.gamma, args.gae_lambda
        )
        return masked_whiten(advantages, mask) * mask, returns
    # rloo, grpo: the score's advantage over the group's baseline on every token, and the KL penalty
    # as a
    # per-token reward from t on: A_t = A_i - beta * sum_{t' >= t} KL_t' (GAE with V = 0 and lambda
    # = 1)
    kl_to_go, _ = token_gae(batch["kl_rewards"], torch.zeros_like(rewards), mask, args.gamma, 1.0)
    return (
        group_advantages(batch["scores"], args.num_generations, args.advantage)[:, None] + kl_to_go
    ) * mask, None


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
) -> dict:
    """PPO epochs over the batch: the clipped policy loss, plus the clipped value loss
    when there is a value model."""
    stats, prompt_size = [], args.prompt_len + 2
    for _ in range(args.ppo_epochs):
        for idx in torch.randperm(args.batch_size, generator=generator).split(
            args.batch_size // args.num_minibatches
        ):
            mask = batch["mask"][idx]
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
    """Sample one response per held-out prompt, with the same sampling noise at every
    evaluation, and measure it: gold, proxy, KL to the reference, length, and two signs of
    hacking: the share of response bigrams the reward model never saw in its training pairs, and
    the share of prompts that get the most common response."""
    # not training's: evaluating never moves it
    generator = torch.Generator().manual_seed(args.seed + 10_007)
    prompt_part, prompt_size = with_prompt(prompts), prompts.shape[1] + 2
    responses = generate(policy, prompt_part, args.max_response_len, args.temperature, generator)
    tokens, mask = torch.cat([prompt_part, responses], 1), response_mask(responses)
    logprobs, _ = response_logprobs(
        policy(tokens)[:, prompt_size - 1 : -1], responses, args.temperature
    )
    with adapters_off(policy):
        ref_logprobs, _ = response_logprobs(
            policy(tokens)[:, prompt_size - 1 : -1], responses, args.temperature
        )
    gold = language.gold_score(prompts.numpy(), responses.numpy())
    words = [[t for t in r.tolist() if t > EOS] for r in responses]
    bigrams = [b for seq in word_bigrams(tokens, prompt_size) for b in seq]
    texts = Counter(to_text(r) for r in responses.tolist())
    return {
        "gold_score": float(gold.mean()),
        "gold_std": float(gold.std()),
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


@torch.no_grad()
def best_of_n(
    sft: TinyLM, reward_model: ScalarModel, language: ToyLanguage, prompts: torch.Tensor, args: Args
) -> list:
    """Best-of-n from the SFT policy (Gao et al. 2022): n samples per held-out prompt,
    keep the one the proxy scores highest. Its KL to the SFT policy is analytic:
    KL = log n - (n - 1) / n."""
    generator = torch.Generator().manual_seed(args.seed + 10_008)
    prompt_part = with_prompt(prompts)
    n_max = 2 ** int(math.log2(args.best_of_n))  # n = 1, 2, 4, ..., n_max
    proxy, gold = [], []
    for _ in range(n_max):
        responses = generate(sft, prompt_part, args.max_response_len, args.temperature, generator)
        tokens = torch.cat([prompt_part, responses], 1)
        proxy.append(score(reward_model, tokens, prompt_part.shape[1], args.missing_eos_penalty))
        gold.append(torch.from_numpy(language.gold_score(prompts.numpy(), responses.numpy())))
    proxy, gold = torch.stack(proxy, 1), torch.stack(gold, 1)  # (prompts, n_max)
    best = {
        n: proxy[:, :n].argmax(1, keepdim=True)
        for n in [2**i for i in range(int(math.log2(n_max)) + 1)]
    }
    return [
        {
            "n": n,
            "gold": float(gold.gather(1, b).mean()),
            "proxy": float(proxy.gather(1, b).mean()),
            "kl": math.log(n) - (n - 1) / n,
        }
        for n, b in best.items()
    ]


# --- the three stages ---
def train_sft(args: Args, language: ToyLanguage, rng: np.random.Generator, start_time: float):
    """Stage 1: SFT on the true language: next-token cross-entropy (PAD not predicted),
    lr decayed linearly to 0."""
    sft = TinyLM(
        len(VOCAB),
        args.prompt_len + 2 + args.max_response_len,
        args.d_model,
        args.n_layer,
        args.n_head,
    )
    optimizer = torch.optim.Adam(sft.parameters(), lr=args.sft_learning_rate)
    for step in range(args.sft_steps):
        prompts, responses = language.sample(
            rng, args.sft_batch_size, args.prompt_len, args.max_response_len
        )
        tokens = torch.cat([with_prompt(torch.from_numpy(prompts)), torch.from_numpy(responses)], 1)
        # linear decay to 0
        optimizer.param_groups[0]["lr"] = args.sft_learning_rate * (1 - step / args.sft_steps)
        sft_loss = F.cross_entropy(
            sft(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten(), ignore_index=PAD
        )
        optimizer.zero_grad()
        sft_loss.backward()
        optimizer.step()
        if step % 200 == 0 or step == args.sft_steps - 1:
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
    """Two SFT responses per prompt and the rater's choice:
    P(a > b) = sigmoid((gold(a) - gold(b)) / tau). Returns the chosen and the rejected
    sequences and the gold margin, gold(chosen) - gold(rejected)."""
    prompt_part = with_prompt(prompts)
    a, b = (generate(sft, prompt_part, args.max_response_len, 1.0, generator) for _ in range(2))
    gold_a, gold_b = (language.gold_score(prompts.numpy(), r.numpy()) for r in (a, b))
    p_a_wins = 1 / (1 + np.exp(-(gold_a - gold_b) / args.rm_label_temperature))
    a_wins = torch.from_numpy(rng.random(len(prompts)) < p_a_wins)
    chosen, rejected = torch.where(a_wins[:, None], a, b), torch.where(a_wins[:, None], b, a)
    gold_margin = torch.from_numpy(gold_a - gold_b) * (2 * a_wins.double() - 1)
    return torch.cat([prompt_part, chosen], 1), torch.cat([prompt_part, rejected], 1), gold_margin


def train_reward_model(
    sft: TinyLM,
    args: Args,
    language: ToyLanguage,
    new_prompts,
    rng: np.random.Generator,
    generator: torch.Generator,
    start_time: float,
):
    """Stage 2: a Bradley-Terry reward model (SFT + LoRA + a scalar head) on
    rater-labelled pairs of SFT samples. Returns it normalized (SFT samples score mean 0, std 1),
    its held-out accuracy and the bigrams it saw."""
    prompt_size = args.prompt_len + 2
    reward_model = ScalarModel(
        add_lora(copy.deepcopy(sft), args.lora_rank, args.lora_alpha), args.d_model
    )
    chosen, rejected, _ = preference_pairs(
        sft, language, new_prompts(args.rm_num_pairs), args, rng, generator
    )
    optimizer = torch.optim.Adam(
        [p for p in reward_model.parameters() if p.requires_grad], lr=args.rm_learning_rate
    )
    for _ in range(args.rm_epochs):
        for idx in torch.randperm(args.rm_num_pairs, generator=generator).split(args.rm_batch_size):
            rm_loss = bradley_terry_loss(
                score(reward_model, chosen[idx], prompt_size),
                score(reward_model, rejected[idx], prompt_size),
            )
            optimizer.zero_grad()
            rm_loss.backward()
            optimizer.step()
    reward_model.requires_grad_(False)
    with torch.no_grad():
        # held-out accuracy against the gold order (the raters' noise removed)
        test_pairs = preference_pairs(sft, language, new_prompts(1000), args, rng, generator)
        test_chosen, test_rejected, gold_margin = test_pairs
        chosen_scores, rejected_scores = (
            score(reward_model, t, prompt_size) for t in (test_chosen, test_rejected)
        )
        rm_accuracy = float(
            ((chosen_scores > rejected_scores) == (gold_margin > 0))[gold_margin != 0]
            .float()
            .mean()
        )
        # normalize: SFT samples score mean 0, std 1 (folded into the head)
        sft_scores = torch.cat([chosen_scores, rejected_scores])
        reward_model.head.weight /= sft_scores.std()
        reward_model.head.bias.copy_(
            (reward_model.head.bias - sft_scores.mean()) / sft_scores.std()
        )
    print(
        f"reward model: {args.rm_num_pairs} pairs, last loss {rm_loss.item():.4f}, "
        f"held-out accuracy vs gold {rm_accuracy:.3f}, seconds={time.time() - start_time:.1f}"
    )
    seen_bigrams = {
        b for t in (chosen, rejected) for seq in word_bigrams(t, prompt_size) for b in seq
    }
    return reward_model, rm_accuracy, seen_bigrams


def make_value_model(args: Args, policy: TinyLM, reward_model: ScalarModel) -> ScalarModel | None:
    """gae's critic: a copy of the reward model whose LoRA and head train, or a
    head on the policy's own trunk. rloo and grpo have none."""
    if args.advantage != "gae":
        return None
    value_model = (
        ScalarModel(policy, args.d_model)
        if args.value_model == "shared"
        else copy.deepcopy(reward_model)
    )
    # V starts as the reward model's head
    value_model.head.load_state_dict(reward_model.head.state_dict())
    for name, p in value_model.named_parameters():
        p.requires_grad_("lora_" in name or name.startswith("head."))
    return value_model


def main(args: Args) -> dict:
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

    # --- seeding ---
    torch.manual_seed(args.seed)
    # the language's samples (prompts too) and the raters' noise
    rng = np.random.default_rng(args.seed)
    # the sampling of responses and minibatches in training
    generator = torch.Generator().manual_seed(args.seed)
    # One thread: a row's matrix products round the same whatever rows share its minibatch, which
    # is what lets the first PPO minibatch see a ratio of exactly 1.
    torch.set_num_threads(1)
    language = ToyLanguage(args.seed)

    def new_prompts(n: int) -> torch.Tensor:
        return torch.from_numpy(language.sample(rng, n, args.prompt_len, 1)[0])

    eval_prompts = new_prompts(args.eval_prompts)  # held out: drawn once, never trained on

    # --- stages 1 and 2: SFT, then a reward model from pairs of SFT samples that the gold raters
    # labelled ---
    sft, sft_loss = train_sft(args, language, rng, start_time)
    reward_model, rm_accuracy, seen_bigrams = train_reward_model(
        sft, args, language, new_prompts, rng, generator, start_time
    )

    # --- stage 3: policy = SFT + LoRA (B = 0: equal to SFT at the start); reference = the policy
    # with its
    # adapters off; the reward model frozen; a value model only for gae ---
    policy = add_lora(copy.deepcopy(sft), args.lora_rank, args.lora_alpha)
    value_model = make_value_model(args, policy, reward_model)
    trainable = [
        p for m in [policy, value_model] if m is not None for p in m.parameters() if p.requires_grad
    ]
    # a shared critic's trunk is the policy's: once
    params = list({id(p): p for p in trainable}.values())
    optimizer = torch.optim.Adam(params, lr=args.learning_rate, eps=1e-5)
    # B = 0: this is SFT
    sft_eval = evaluate(policy, reward_model, language, eval_prompts, args, seen_bigrams)
    print(
        f"SFT on held-out prompts: gold {sft_eval['gold_score']:.3f}, "
        f"proxy {sft_eval['proxy_score']:.3f}, "
        f"length {sft_eval['length']:.2f}, samples: {sft_eval['samples']}"
    )
    beta, history = args.beta, []
    ppo_start = time.time()
    for update in range(1, args.num_updates + 1):
        if args.anneal_lr:  # lr_k = lr * (1 - (k-1)/K)
            optimizer.param_groups[0]["lr"] = args.learning_rate * (
                1 - (update - 1) / args.num_updates
            )
        prompts = new_prompts(args.batch_size // args.num_generations)
        batch = rollout(policy, value_model, reward_model, prompts, args, beta, generator)
        advantages, returns = compute_advantages(batch, args)
        update_metrics = ppo_update(
            policy, value_model, optimizer, params, batch, advantages, returns, args, generator
        )

        # --- logging, with TRL's metric names and meanings; the KL controller ---
        kl, scores = batch["kl"], batch["scores"]
        # -beta * KL per response, before any whitening
        non_score_reward = float((-beta * kl).sum(1).mean())
        metrics = {
            "objective/kl": float(kl.sum(1).mean()),
            # sum_t -log pi
            "objective/entropy": float((-batch["old_logprobs"] * batch["mask"]).sum(1).mean()),
            "objective/non_score_reward": non_score_reward,
            "objective/scores": float(scores.mean()),
            "objective/rlhf_reward": float(scores.mean()) + non_score_reward,
            "objective/beta": beta,
            "lr": optimizer.param_groups[0]["lr"],
            **update_metrics,
        }
        if args.kl_target is not None:
            beta = adaptive_beta(
                beta, metrics["objective/kl"], args.kl_target, args.batch_size, args.kl_horizon
            )
        global_step = update * args.batch_size  # responses sampled so far
        sps = int(global_step / (time.time() - ppo_start))  # responses per second of PPO
        print(f"global_step={global_step}, episodic_return={metrics['objective/rlhf_reward']:.4f}")
        if update % args.eval_every == 0 or update == args.num_updates:
            ev = evaluate(policy, reward_model, language, eval_prompts, args, seen_bigrams)
            metrics.update(
                {f"eval/{k}": v for k, v in ev.items() if k not in ("samples", "gold_std")}
            )
            history.append({"update": update, **{k: v for k, v in ev.items() if k != "samples"}})
            print(
                f"update={update}, SPS={sps}, gold={ev['gold_score']:.3f}, "
                f"proxy={ev['proxy_score']:.3f}, kl={ev['kl']:.3f}, length={ev['length']:.2f}, "
                f"eos_rate={ev['eos_rate']:.2f}, beta={beta:.4f}, samples: {ev['samples']}"
            )
            if args.track:
                metrics["eval/samples"] = wandb.Table(
                    columns=["prompt | response"], data=[[s] for s in ev["samples"]]
                )
        if args.track:
            wandb.log({**metrics, "charts/SPS": sps}, step=global_step)

    # --- the method and SFT on the held-out prompts; best-of-n from SFT beside them ---
    method = {"gae": "ppo", "rloo": "rloo", "grpo": "grpo"}[args.advantage]
    frontier = best_of_n(sft, reward_model, language, eval_prompts, args) if args.best_of_n else []
    print(f"{'':>12} {'gold':>8} {'proxy':>8} {'kl':>8} {'length':>8} {'eos':>6} {'distinct':>9}")
    for name, e in [("SFT", sft_eval), (method.upper(), ev)]:
        print(
            f"{name:>12} {e['gold_score']:8.3f} {e['proxy_score']:8.3f} {e['kl']:8.3f} "
            f"{e['length']:8.2f} {e['eos_rate']:6.2f} {e['distinct_ratio']:9.2f}"
        )
    for row in frontier:
        print(
            f"{'best-of-' + str(row['n']):>12} "
            f"{row['gold']:8.3f} {row['proxy']:8.3f} {row['kl']:8.3f}"
        )
    if args.track:
        wandb.finish()
    return {
        "method": method,
        # policy, reference, reward model (and value model)
        "models": 4 if value_model is not None else 3,
        "sft_loss": round(sft_loss, 4),
        "rm_accuracy": rm_accuracy,
        "gold_gain_in_sft_std": (ev["gold_score"] - sft_eval["gold_score"]) / sft_eval["gold_std"],
        "sft": sft_eval,
        "final": ev,  # the trained policy on the held-out prompts
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
