"""Planted bugs: does a fast test fail when one line of a script is changed the way a careless
edit changes it?

Each mutant below replaces one exact piece of text, found once in its script, with another. For
each, the tracked files are copied to a scratch folder, the mutant is applied there, and that
script's fast tests run (`-m "not slow"`: no learning-threshold test). A mutant is killed when a
test fails, and survives when all pass. The score is killed / all.

    python benchmarks/mutants.py                     # all mutants, 2 at a time
    python benchmarks/mutants.py --only ppo.py       # one script's
    python benchmarks/mutants.py --out benchmarks/results/mutants.md

Surviving mutants are listed in benchmarks/README.md, each with the reason it survives.
"""

import argparse
import ast
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (script, what the bug is, the text it replaces, the text it puts there)
MUTANTS = [
    # --- reinforce.py ---
    (
        "reinforce.py",
        "no bootstrap at a time limit",
        "truncated_at_end[i] = not terminated[i]",
        "truncated_at_end[i] = False",
    ),
    (
        "reinforce.py",
        "bootstrap after a termination too",
        "truncated_at_end[i] = not terminated[i]",
        "truncated_at_end[i] = True",
    ),
    (
        "reinforce.py",
        "s_T taken from the next episode's first obs",
        "final_obs[i] = next_obs[i]",
        "final_obs[i] = obs[i]",
    ),
    (
        "reinforce.py",
        "reward-to-go without gamma",
        "running = rewards[t] + gamma * running",
        "running = rewards[t] + running",
    ),
    (
        "reinforce.py",
        "--weight total ignored",
        'weight_fn = total_return if args.weight == "total" else reward_to_go',
        "weight_fn = reward_to_go",
    ),
    (
        "reinforce.py",
        "--baseline mean subtracts nothing",
        "advantages = b_weights - b_weights.mean()",
        "advantages = b_weights",
    ),
    (
        "reinforce.py",
        "--baseline value subtracts nothing",
        "advantages = b_weights - torch.as_tensor(values, device=device)",
        "advantages = b_weights",
    ),
    (
        "reinforce.py",
        "policy-gradient loss with the wrong sign",
        "return -(weights * logprobs).mean()",
        "return (weights * logprobs).mean()",
    ),
    (
        "reinforce.py",
        "evaluate without the saved normalization",
        "action = agent.dist(torch.as_tensor(normalizer.obs(obs))).mode",
        "action = agent.dist(torch.as_tensor(obs.astype(np.float32))).mode",
    ),
    (
        "reinforce.py",
        "the discounted return for reward scaling carries over between batches",
        "normalizer.discounted_return[:] = 0.0  # of no earlier episode",
        "pass  # of no earlier episode",
    ),
    (
        "reinforce.py",
        "V fitted to the batch's mean weight",
        "v_loss = value_loss(agent.value(b_obs), b_weights)",
        "v_loss = value_loss(agent.value(b_obs), b_weights.mean())",
    ),
    # --- actor_critic.py ---
    (
        "actor_critic.py",
        "no bootstrap at all (next_values * 0)",
        "next_values = next_values * (1.0 - terminated_buf)",
        "next_values = next_values * 0",
    ),
    (
        "actor_critic.py",
        "bootstrap masked by dones (no bootstrap at a time limit)",
        "next_values = next_values * (1.0 - terminated_buf)",
        "next_values = next_values * (1.0 - dones_buf)",
    ),
    (
        "actor_critic.py",
        "bootstrap from the next episode's first obs",
        "next_obs = true_next_obs(raw_obs, done, info)",
        "next_obs = raw_obs",
    ),
    (
        "actor_critic.py",
        "GAE leaks across episode ends",
        "last = deltas[t] + gamma * lam * (1.0 - dones[t]) * last",
        "last = deltas[t] + gamma * lam * last",
    ),
    (
        "actor_critic.py",
        "value target is the advantage",
        "returns = advantages + values",
        "returns = advantages",
    ),
    (
        "actor_critic.py",
        "--norm-adv does not scale",
        "b_advantages = (b_advantages - b_advantages.mean()) / (b_advantages.std() + 1e-8)",
        "b_advantages = b_advantages - b_advantages.mean()",
    ),
    (
        "actor_critic.py",
        "entropy bonus with the wrong sign",
        "loss = pg_loss - args.ent_coef * entropy_loss + args.vf_coef * v_loss",
        "loss = pg_loss + args.ent_coef * entropy_loss + args.vf_coef * v_loss",
    ),
    (
        "actor_critic.py",
        "evaluate without the saved normalization",
        "action = agent.dist(torch.as_tensor(normalizer.obs(obs))).mode",
        "action = agent.dist(torch.as_tensor(obs.astype(np.float32))).mode",
    ),
    (
        "actor_critic.py",
        "observations divided by the variance, not the std",
        "obs = (raw_obs - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + 1e-8)",
        "obs = (raw_obs - self.obs_rms.mean) / (self.obs_rms.var + 1e-8)",
    ),
    (
        "actor_critic.py",
        "discounted return for reward scaling not reset at an episode end",
        "self.discounted_return[done] = 0.0",
        "pass",
    ),
    (
        "actor_critic.py",
        "terminated stored as done",
        "terminated_buf[step] = terminated",
        "terminated_buf[step] = done",
    ),
    # --- dqn.py ---
    (
        "dqn.py",
        "the replay buffer stores the reset obs as s'",
        "buffer.add(obs, true_next_obs(raw_obs, done, info), actions, reward, terminated)",
        "buffer.add(obs, raw_obs, actions, reward, terminated)",
    ),
    (
        "dqn.py",
        "the replay buffer stores done as terminated (no bootstrap at a time limit)",
        "buffer.add(obs, true_next_obs(raw_obs, done, info), actions, reward, terminated)",
        "buffer.add(obs, true_next_obs(raw_obs, done, info), actions, reward, done)",
    ),
    (
        "dqn.py",
        "--double-dqn ignored (never double)",
        "next_q_online = q_network(b_next_obs) if args.double_dqn else None",
        "next_q_online = None",
    ),
    (
        "dqn.py",
        "--no-double-dqn ignored (always double)",
        "next_q_online = q_network(b_next_obs) if args.double_dqn else None",
        "next_q_online = q_network(b_next_obs)",
    ),
    (
        "dqn.py",
        "the target computed with the online network",
        "next_q_target = target_network(b_next_obs)",
        "next_q_target = q_network(b_next_obs)",
    ),
    (
        "dqn.py",
        "td_target bootstraps after a termination",
        "return rewards + gamma * (1.0 - terminated) * next_value",
        "return rewards + gamma * next_value",
    ),
    (
        "dqn.py",
        "double DQN picks the action with the target network",
        "best = next_q_online.argmax(-1, keepdim=True)",
        "best = next_q_target.argmax(-1, keepdim=True)",
    ),
    (
        "dqn.py",
        "Polyak update with 1 - tau",
        "target_param.lerp_(param, args.tau)",
        "target_param.lerp_(param, 1.0 - args.tau)",
    ),
    (
        "dqn.py",
        "Q(s, a) of the greedy action, not of the stored one",
        "q_taken = q_values.gather(-1, b_actions.unsqueeze(-1)).squeeze(-1)",
        "q_taken = q_values.max(-1).values",
    ),
    (
        "dqn.py",
        "epsilon-greedy explores with probability 1 - epsilon",
        "explore = rng.random(len(greedy)) < epsilon",
        "explore = rng.random(len(greedy)) > epsilon",
    ),
    (
        "dqn.py",
        "the buffer samples rows never written",
        "rows = self.rng.integers(0, self.size, batch_size)",
        "rows = self.rng.integers(0, self.capacity, batch_size)",
    ),
    # --- ppo.py ---
    (
        "ppo.py",
        "bootstrap from the next episode's first obs (next_obs = raw_obs)",
        "next_obs = true_next_obs(raw_obs, done, info)",
        "next_obs = raw_obs",
    ),
    (
        "ppo.py",
        "bootstrap masked by dones instead of terminated",
        "next_values = next_values * (1.0 - terminated_buf)",
        "next_values = next_values * (1.0 - dones_buf)",
    ),
    (
        "ppo.py",
        "evaluate without the saved normalization",
        "action = agent.dist(torch.as_tensor(normalizer.obs(obs))).mode",
        "action = agent.dist(torch.as_tensor(obs.astype(np.float32))).mode",
    ),
    (
        "ppo.py",
        "evaluate samples instead of taking the mode",
        "action = agent.dist(torch.as_tensor(normalizer.obs(obs))).mode",
        "action = agent.dist(torch.as_tensor(normalizer.obs(obs))).sample()",
    ),
    (
        "ppo.py",
        "the ratio inverted",
        "logratio = new_dist.log_prob(b_actions[mb]) - b_logprobs[mb]",
        "logratio = b_logprobs[mb] - new_dist.log_prob(b_actions[mb])",
    ),
    (
        "ppo.py",
        "GAE without lambda",
        "last = deltas[t] + gamma * lam * (1.0 - dones[t]) * last",
        "last = deltas[t] + gamma * (1.0 - dones[t]) * last",
    ),
    (
        "ppo.py",
        "--target-kl never stops an update",
        "if args.target_kl is not None and approx_kl > args.target_kl:",
        "if args.target_kl is not None and approx_kl > 1e9:",
    ),
    (
        "ppo.py",
        "--norm-adv does not scale",
        "mb_advantages = mb_advantages / (mb_advantages.std() + 1e-8)",
        "mb_advantages = mb_advantages",
    ),
    (
        "ppo.py",
        "--no-clip-vloss ignored",
        "if args.clip_vloss:  # V stays within clip_coef of V_old",
        "if True:",
    ),
    (
        "ppo.py",
        "PPO-KL's beta never adapts",
        "kl_beta = adapt_kl_beta(kl_beta, update_kl, args.kl_target)",
        "adapt_kl_beta(kl_beta, update_kl, args.kl_target)",
    ),
    (
        "ppo.py",
        "rewards not scaled by the return's std",
        "reward = np.clip(reward / np.sqrt(self.return_rms.var + 1e-8), -10.0, 10.0)",
        "reward = np.clip(reward, -10.0, 10.0)",
    ),
    (
        "ppo.py",
        "the clip range ignored in the clipped loss",
        "clipped = torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef) * advantages",
        "clipped = ratio * advantages",
    ),
    (
        "ppo.py",
        "minibatches in the same order every epoch",
        "epochs = [torch.randperm(len(b_obs), device=device) for _ in range(args.update_epochs)]",
        "epochs = [torch.arange(len(b_obs), device=device) for _ in range(args.update_epochs)]",
    ),
    # --- ppo_rlhf_toy.py ---
    (
        "ppo_rlhf_toy.py",
        "groups built with repeat (a group mixes prompts)",
        "with_prompt(prompts.repeat_interleave(args.num_generations, 0))",
        "with_prompt(prompts.repeat(args.num_generations, 1))",
    ),
    (
        "ppo_rlhf_toy.py",
        "best-of-n chooses by the gold score",
        "order = begin + np.argsort(proxy[begin:end])",
        "order = begin + np.argsort(gold[begin:end])",
    ),
    (
        "ppo_rlhf_toy.py",
        "the reward model read one token before EOS",
        "torch.arange(len(tokens)), prompt_size + last_index(response_mask(responses))",
        "torch.arange(len(tokens)), prompt_size + last_index(response_mask(responses)) - 1",
    ),
    (
        "ppo_rlhf_toy.py",
        "the critic's LoRA frozen",
        'p.requires_grad_("lora_" in name or name.startswith("head."))',
        'p.requires_grad_(name.startswith("head."))',
    ),
    (
        "ppo_rlhf_toy.py",
        "the KL with the wrong sign",
        "log_ratio = logprobs - ref_logprobs",
        "log_ratio = ref_logprobs - logprobs",
    ),
    (
        "ppo_rlhf_toy.py",
        "the KL not masked after EOS",
        "kl = kl_per_token(old_logprobs, ref_logprobs, args.kl_estimator) * mask",
        "kl = kl_per_token(old_logprobs, ref_logprobs, args.kl_estimator)",
    ),
    (
        "ppo_rlhf_toy.py",
        "the reference is the policy itself (adapters left on)",
        "    with adapters_off(policy):\n        logits = policy(tokens)",
        "    with torch.no_grad():\n        logits = policy(tokens)",
    ),
    (
        "ppo_rlhf_toy.py",
        "beta never moves under --kl-target",
        "            beta = adaptive_beta(",
        "            _ = adaptive_beta(",
    ),
    (
        "ppo_rlhf_toy.py",
        "the value loss left out of the update",
        "loss = pg_loss + args.vf_coef * vf_loss",
        "loss = pg_loss",
    ),
    (
        "ppo_rlhf_toy.py",
        "RLOO's baseline includes the sample itself",
        "((group.sum(1, keepdim=True) - group) / (k - 1))",
        "(group.mean(1, keepdim=True).expand(-1, k))",
    ),
    (
        "ppo_rlhf_toy.py",
        "the missing-EOS penalty added, not subtracted",
        "return scores - missing_eos_penalty * (responses != EOS).all(1)",
        "return scores + missing_eos_penalty * (responses != EOS).all(1)",
    ),
    (
        "ppo_rlhf_toy.py",
        "adapters stay off after the reference pass",
        "        for m in layers:\n            m.enabled = True",
        "        for m in layers:\n            m.enabled = False",
    ),
    # issue 23: the held-out split, best-of-n's exact KL, the defects of the review
    (
        "ppo_rlhf_toy.py",
        "training prompts drawn from the held-out part",
        'return torch.from_numpy(language.prompts(rng, n, args.prompt_len, "train"))',
        'return torch.from_numpy(language.prompts(rng, n, args.prompt_len, "heldout"))',
    ),
    (
        "ppo_rlhf_toy.py",
        "the split ignored when drawing",
        "        wrong = prompt_split(prompts) != split\n        while",
        "        wrong = prompt_split(prompts) == 0\n        while",
    ),
    (
        "ppo_rlhf_toy.py",
        "the evaluation's prompts from stage 3's generator",
        "name: torch.from_numpy(language.prompts(eval_rng,",
        "name: torch.from_numpy(language.prompts(rng,",
    ),
    (
        "ppo_rlhf_toy.py",
        "preference pairs at temperature 1",
        "    a = generate(sft, prompt_part, args.max_response_len, args.temperature, generator)",
        "    a = generate(sft, prompt_part, args.max_response_len, 1.0, generator)",
    ),
    (
        "ppo_rlhf_toy.py",
        "the reward model not merged",
        "    merge_lora(reward_model.trunk)\n",
        "\n",
    ),
    (
        "ppo_rlhf_toy.py",
        "stage 3 changes the stages' SFT model (no copy)",
        "policy = add_lora(copy.deepcopy(sft), args.lora_rank, args.lora_alpha)",
        "policy = add_lora(sft, args.lora_rank, args.lora_alpha)",
    ),
    (
        "ppo_rlhf_toy.py",
        "best-of-n's distribution off by one rank",
        "pi = upper**n - (upper - q) ** n",
        "pi = upper**n - (upper - q) ** (n - 1)",
    ),
    (
        "ppo_rlhf_toy.py",
        "best-of-n ranked the wrong way",
        "order = begin + np.argsort(proxy[begin:end])",
        "order = begin + np.argsort(-proxy[begin:end])",
    ),
    (
        "ppo_rlhf_toy.py",
        "best-of-n's KL ratio upside down",
        "np.log(np.maximum(pi, 1e-300) / q)",
        "np.log(q / np.maximum(pi, 1e-300))",
    ),
    (
        "ppo_rlhf_toy.py",
        "gold counts words after EOS",
        "is_word = np.cumsum(responses == EOS, 1) == 0",
        "is_word = responses > EOS",
    ),
    (
        "ppo_rlhf_toy.py",
        "gold's fluency chain from the prompt's first word",
        "chain = np.concatenate([prompts[:, -1:] - 4, words], 1)",
        "chain = np.concatenate([prompts[:, :1] - 4, words], 1)",
    ),
    (
        "ppo_rlhf_toy.py",
        "the topic's tie to the first word",
        "tie = groups[:, -1]",
        "tie = groups[:, 0]",
    ),
    (
        "ppo_rlhf_toy.py",
        "stages 1 and 2 at the caller's thread count",
        "    torch.set_num_threads(1)  # as in main(): another thread count rounds the training",
        "    pass  # as in main(): another thread count rounds the training",
    ),
    (
        "ppo_rlhf_toy.py",
        "SFT's loss on the prompt's random words",
        "        targets[:, : prompt_part.shape[1] - 1] = PAD\n",
        "\n",
    ),
    (
        "ppo_rlhf_toy.py",
        "the held-out rule another modulus",
        "SPLIT_MODULUS = 7",
        "SPLIT_MODULUS = 8",
    ),
    # issue 30: GRPO on PPO's scale, DPO, the validation split, the overlap at the loss
    (
        "ppo_rlhf_toy.py",
        "GRPO's std divides the score but not the KL-to-go (before issue 30)",
        "return (returns_to_go - baseline[:, None]) / scale[:, None] * mask, None",
        "return ((batch['scores'] - baseline) / scale)[:, None] + kl_to_go * mask, None",
    ),
    (
        "ppo_rlhf_toy.py",
        "GRPO without the division by the group's std (Dr. GRPO)",
        "scale = (group.std(1, keepdim=True) + 1e-4).expand(-1, k)",
        "scale = torch.ones_like(group)",
    ),
    (
        "ppo_rlhf_toy.py",
        "DPO's reference log-probs added",
        "beta * (logp_chosen - ref_chosen), beta * (logp_rejected - ref_rejected)",
        "beta * (logp_chosen + ref_chosen), beta * (logp_rejected + ref_rejected)",
    ),
    (
        "ppo_rlhf_toy.py",
        "DPO's chosen and rejected swapped",
        "loss = dpo_loss(logp[0], logp[1], ref[0][idx], ref[1][idx], args.beta)",
        "loss = dpo_loss(logp[1], logp[0], ref[1][idx], ref[0][idx], args.beta)",
    ),
    (
        "ppo_rlhf_toy.py",
        "DPO's reference computed with the adapters on (equivalent: B = 0 before the first step)",
        "    with torch.no_grad(), adapters_off(policy):\n        ref = [",
        "    with torch.no_grad():\n        ref = [",
    ),
    (
        "ppo_rlhf_toy.py",
        "DPO's reference moves with the policy",
        "loss = dpo_loss(logp[0], logp[1], ref[0][idx], ref[1][idx], args.beta)",
        "loss = dpo_loss(logp[0], logp[1], logp[0].detach(), logp[1].detach(), args.beta)",
    ),
    (
        "ppo_rlhf_toy.py",
        "DPO's sequence log-prob counts the padding",
        "return (logprobs * response_mask(responses)).sum(1)",
        "return logprobs.sum(1)",
    ),
    (
        "ppo_rlhf_toy.py",
        "validation and training prompts drawn as one part",
        "wrong = prompt_split(prompts) != split\n        while wrong.any():\n"
        "            prompts[wrong] = rng.integers(0, len(WORDS), (wrong.sum(), prompt_len)) + 4\n"
        "            wrong = prompt_split(prompts) != split",
        'wrong = (prompt_split(prompts) == "heldout") != (split == "heldout")\n'
        "        while wrong.any():\n"
        "            prompts[wrong] = rng.integers(0, len(WORDS), (wrong.sum(), prompt_len)) + 4\n"
        '            wrong = (prompt_split(prompts) == "heldout") != (split == "heldout")',
    ),
    (
        "ppo_rlhf_toy.py",
        "PPO's minibatches not recorded (heldout_overlap blind to stage 3)",
        '            record_prompts(seen, batch["tokens"][idx], args.prompt_len)\n',
        "\n",
    ),
    (
        "ppo_rlhf_toy.py",
        "token GAE's rewards not masked",
        "    rewards = rewards * mask\n    values = values * mask\n",
        "    values = values * mask\n",
    ),
    # --- resume (issue 24) ---
    (
        "reinforce.py",
        "resume forgets the critic's optimizer",
        'value_optimizer.load_state_dict(checkpoint["value_optimizer"])',
        "pass",
    ),
    (
        "actor_critic.py",
        "resume restarts the normalization",
        'normalizer.load_state_dict(checkpoint["normalizer"])\n        torch.set_rng_state',
        "torch.set_rng_state",
    ),
    (
        "actor_critic.py",
        "resume restarts the learning-rate schedule",
        'global_step = checkpoint.get("global_step", 0)',
        "global_step = 0",
    ),
    (
        "dqn.py",
        "resume forgets the numpy generator",
        'rng.bit_generator.state = checkpoint["numpy_rng"]',
        "pass",
    ),
    (
        "dqn.py",
        "resume forgets the replay buffer it saved",
        'buffer.load_state_dict(checkpoint["replay_buffer"])',
        "pass",
    ),
    (
        "dqn.py",
        "resume forgets the target network",
        'target_network.load_state_dict(checkpoint["target_model"])',
        "pass",
    ),
    (
        "ppo.py",
        "resume forgets the optimizer's state",
        'optimizer.load_state_dict(checkpoint["optimizer"])',
        "pass",
    ),
    (
        "ppo.py",
        "resume forgets PPO-KL's beta",
        'kl_beta = checkpoint.get("kl_beta", 1.0)',
        "kl_beta = 1.0",
    ),
    (
        "ppo.py",
        "resume forgets the torch generator",
        'torch.set_rng_state(checkpoint["torch_rng"])',
        "pass",
    ),
    (
        "ppo.py",
        "a checkpoint written in place (a crash leaves half a file)",
        'torch.save(checkpoint, path + ".tmp")\n    os.replace(path + ".tmp", path)',
        "torch.save(checkpoint, path)",
    ),
    # --- issue 29: the plumbing, in fewer lines ---
    (
        "dqn.py",
        "a resumed run logs a TD loss it has not computed yet",
        "if loss is not None:  # once this run has taken a gradient step",
        "if True:",
    ),
    (
        "ppo.py",
        "resume lets --shared-trunk change (the critic loaded into the actor's layers)",
        'for name in ["env_id", "shared_trunk"]:',
        'for name in ["env_id"]:',
    ),
    (
        "ppo.py",
        "losses/clipfrac of the last minibatch only",
        '"losses/clipfrac": np.mean(clipfracs),',
        '"losses/clipfrac": clipfracs[-1],',
    ),
    (
        "actor_critic.py",
        "--resume ignores the saved settings",
        "args = tyro.cli(Args, args=argv, default=saved)",
        "args = tyro.cli(Args, args=argv)",
    ),
    (
        "reinforce.py",
        "a stop does not save",
        "last = global_step >= args.total_timesteps or STOP",
        "last = global_step >= args.total_timesteps",
    ),
    (
        "ppo.py",
        "a second Ctrl-C is swallowed",
        "    if STOP:\n        raise KeyboardInterrupt",
        "    if False:\n        raise KeyboardInterrupt",
    ),
    (
        "ppo.py",
        "SIGTERM exits with Ctrl-C's status",
        "raise SystemExit(128 + signal.Signals[STOP[0]])",
        "raise SystemExit(130)",
    ),
    (
        "ppo.py",
        "SIGTERM is not handled (the run dies unsaved)",
        "    signal.signal(signal.SIGTERM, ask_to_stop)\n",
        "",
    ),
    (
        "actor_critic.py",
        "the env gets the sampled Box action unclipped",
        "envs = ClipAction(envs)  # the env gets a ~ pi clipped to its bounds",
        "pass",
    ),
    (
        "reinforce.py",
        "a Box action stored clipped (its log-prob is not the sample's)",
        "action_steps.append(action.cpu().numpy())",
        "action_steps.append(action.clamp(-1, 1).cpu().numpy())",
    ),
]


# --- generated mutants: every operator and number in the math functions, one at a time ---
MATH = {
    "reinforce.py": ["reward_to_go", "total_return", "policy_gradient_loss", "value_loss"],
    "actor_critic.py": ["gae", "policy_gradient_loss", "value_loss"],
    "dqn.py": ["td_target", "linear_schedule", "epsilon_greedy"],
    "ppo.py": [
        "gae",
        "clip_policy_loss",
        "kl_penalty_policy_loss",
        "adapt_kl_beta",
        "value_loss",
        "clipped_value_loss",
    ],
    "ppo_rlhf_toy.py": [
        "response_mask",
        "last_index",
        "masked_mean",
        "masked_var",
        "masked_whiten",
        "kl_per_token",
        "token_rewards",
        "token_gae",
        "ppo_clip_loss",
        "clipped_value_loss",
        "bradley_terry_loss",
        "adaptive_beta",
        "group_baseline",
        "compute_advantages",
        "dpo_loss",
        "sequence_logprobs",
    ],
}
SWAP_BINOP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
SWAP_BINOP[ast.Pow] = ast.Mult
SWAP_COMPARE = {ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE}
SWAP_COMPARE.update({ast.Eq: ast.NotEq, ast.NotEq: ast.Eq})


def mutate(node: ast.AST) -> bool:
    """Change one node in place, as mutmut would: + and -, * and /, ** to *, a comparison
    reversed, a unary minus or `not` dropped (marked for the caller), a number plus 1."""
    if isinstance(node, ast.BinOp) and type(node.op) in SWAP_BINOP:
        node.op = SWAP_BINOP[type(node.op)]()
        return True
    if isinstance(node, ast.Compare) and type(node.ops[0]) in SWAP_COMPARE:
        node.ops[0] = SWAP_COMPARE[type(node.ops[0])]()
        return True
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.Not):
        node.op = ast.UAdd()  # -x -> +x; not x -> +x (truthiness kept for bool tensors)
        return True
    is_number = isinstance(node, ast.Constant) and type(node.value) in (int, float)
    if is_number:
        node.value = node.value + 1
        return True
    return False


def generated_mutants() -> list:
    """One mutant per operator or number in each function of MATH."""
    mutants = []
    for script, names in MATH.items():
        with open(os.path.join(ROOT, script)) as f:
            source = f.read()
        for function in ast.parse(source).body:
            if not isinstance(function, ast.FunctionDef) or function.name not in names:
                continue
            old = ast.get_source_segment(source, function)
            n_nodes = len(list(ast.walk(function)))
            for i in range(n_nodes):
                mutant = copy.deepcopy(function)
                node = list(ast.walk(mutant))[i]
                if not isinstance(node, ast.expr):
                    continue
                before = ast.unparse(node)
                if not mutate(node):
                    continue
                what = f"{function.name}, line {node.lineno}: `{before}` -> `{ast.unparse(node)}`"
                mutants.append((script, what, old, ast.unparse(mutant)))
    return mutants


def tests_for(script: str) -> list:
    """The test files that cover a script: its own, and the shared ones for the classic four."""
    name = script[: -len(".py")]
    files = [f"tests/test_{name}.py"]
    if name != "ppo_rlhf_toy":
        files += ["tests/test_shared.py", "tests/test_loops.py", "tests/test_resume.py"]
    return [f for f in files if os.path.exists(os.path.join(ROOT, f))]


def copy_tree(dest: str):
    """The repository's files as they are now (tracked, and new ones git does not ignore)."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for f in files:
        os.makedirs(os.path.join(dest, os.path.dirname(f)), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, f), os.path.join(dest, f))


def run_one(index: int, mutant: tuple) -> dict:
    script, what, old, new = mutant
    with tempfile.TemporaryDirectory(prefix="rlref-mutant-") as dest:
        copy_tree(dest)
        path = os.path.join(dest, script)
        with open(path) as f:
            source = f.read()
        if source.count(old) != 1:
            raise SystemExit(
                f"mutant {index}: its text occurs {source.count(old)} times in {script}"
            )
        with open(path, "w") as f:
            f.write(source.replace(old, new))
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-x",
            "-q",
            "-m",
            "not slow",
            "-p",
            "no:cacheprovider",
        ]
        start = time.time()
        try:  # a mutant that hangs the tests (an endless draw, say) counts as caught: CI stops it
            proc = subprocess.run(
                command + tests_for(script), cwd=dest, capture_output=True, text=True, timeout=600
            )
        except subprocess.TimeoutExpired:
            proc = subprocess.CompletedProcess(command, 1, "FAILED ::(timeout)\n", "")
        failed = [
            line.split(" ")[1] for line in proc.stdout.splitlines() if line.startswith("FAILED")
        ]
        print(f"mutant {index} ({script}, {what}): {proc.returncode != 0}", flush=True)
        return {
            "index": index,
            "script": script,
            "what": what,
            "killed": proc.returncode != 0,
            "by": failed[0].split("::", 1)[1] if failed else ("(error)" if proc.returncode else ""),
            "seconds": time.time() - start,
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="one script's mutants, e.g. ppo.py")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", help="write the table to this Markdown file")
    parser.add_argument(
        "--generated", action="store_true", help="the generated mutants of the math functions"
    )
    args = parser.parse_args()
    mutants = generated_mutants() if args.generated else MUTANTS
    chosen = [(i, m) for i, m in enumerate(mutants, 1) if args.only in (None, m[0])]
    for i, (script, _, old, _) in chosen:  # each mutant's text must be found exactly once
        with open(os.path.join(ROOT, script)) as f:
            count = f.read().count(old)
        if count != 1:
            raise SystemExit(
                f"mutant {i}: its text occurs {count} times in {script}; make it unique"
            )
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda im: run_one(*im), chosen))
    killed = sum(r["killed"] for r in rows)
    lines = [
        f'Mutation score: {killed}/{len(rows)} killed by fast tests (`-m "not slow"`).',
        "",
        "| # | script | planted bug | killed by |",
        "|---|---|---|---|",
    ]
    for r in rows:
        by = f"`{r['by']}`" if r["killed"] else "**survives**"
        lines.append(f"| {r['index']} | {r['script']} | {r['what']} | {by} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"command: `python benchmarks/mutants.py {' '.join(sys.argv[1:])}`\n\n{text}\n")


if __name__ == "__main__":
    main()
