"""PPO with action masks on AutoTTS-v0, CleanRL style: one file, every step in view.

    OMP_NUM_THREADS=1 python examples/ppo_cleanrl_style.py --total-timesteps 200000 --cost-weight 1e-6
    tensorboard --logdir runs

Trains on the AIME24 split of the four Qwen3 models of the AutoTTS release (the search
split, from ../shared/replay/autotts-release), then evaluates the final greedy policy on
AIME25 (held out) with the project's evaluator, under the same protocol as every
controller (release shuffle, seeds 0..eval_seeds-1). The masked categorical sets the
logits of inadmissible actions to a large negative number, as sb3-contrib does.
TensorBoard gets the hyper-parameters as a text table, ``charts/*`` (episodic return,
length, accuracy, tokens, learning rate, SPS), ``losses/*`` and ``eval/*``. The agent's
weights and the evaluation go to ``runs/<run_name>/``. For the library version with
checkpoints and a saved model the evaluator loads, see ``autotts train-ppo``.
"""

import argparse
import ast
import dataclasses
import inspect
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.distributions.categorical import Categorical
from torch.utils.tensorboard import SummaryWriter

import autotts_gym  # noqa: F401  (registers AutoTTS-v0)
from agents.ppo.policy import PolicyController
from autotts_gym.data.sources import load_store
from autotts_gym.envs.spaces import ObservationConfig
from autotts_gym.evaluation.evaluate import evaluate_many, make_options

RELEASE = Path(__file__).resolve().parents[1].parent / "shared" / "replay" / "autotts-release"
HUGE_NEGATIVE = -1e8  # logit of a masked-out action


@dataclass
class Args:
    exp_name: str = Path(__file__).stem
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment (torch, numpy, random and the envs)"""
    torch_deterministic: bool = True
    """if toggled, torch uses deterministic algorithms"""
    store: str = str(RELEASE)
    """replay store: a store folder, a release JSON file or folder, or 'default' (synthetic)"""
    train_splits: str = "*/aime24"
    """comma-separated training splits (model/benchmark patterns; AIME24 is the search split)"""
    eval_splits: str = "*/aime25"
    """comma-separated held-out splits, evaluated once after training"""
    eval_seeds: int = 20
    """branch-order seeds per question in the final evaluation"""
    cost_weight: float = 1e-6
    """reward per token: the return is 1{correct} - cost_weight * tokens"""
    budget_tokens: float = 0.0
    """per-episode token budget (0: none)"""
    max_branches: int = 64
    """branches the policy can open (the observation and actions cover this many)"""
    total_timesteps: int = 200_000
    """total timesteps of the experiment"""
    learning_rate: float = 3e-4
    """the learning rate of the optimizer"""
    num_envs: int = 8
    """the number of parallel game environments"""
    async_envs: bool = False
    """if toggled, AsyncVectorEnv (one process per env) instead of SyncVectorEnv"""
    num_steps: int = 256
    """the number of steps to run in each environment per policy rollout"""
    anneal_lr: bool = True
    """if toggled, the learning rate decays linearly to 0"""
    gamma: float = 1.0
    """the discount factor (1: the objective is the undiscounted return)"""
    gae_lambda: float = 0.95
    """the lambda for the general advantage estimation"""
    num_minibatches: int = 8
    """the number of mini-batches"""
    update_epochs: int = 4
    """the K epochs to update the policy"""
    norm_adv: bool = True
    """if toggled, advantages are normalized per mini-batch"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient"""
    clip_vloss: bool = True
    """if toggled, the value loss is clipped as in the PPO paper"""
    ent_coef: float = 0.01
    """coefficient of the entropy bonus"""
    vf_coef: float = 0.5
    """coefficient of the value function loss"""
    max_grad_norm: float = 0.5
    """the maximum norm for the gradient clipping"""
    target_kl: float = 0.0
    """the target KL divergence threshold (0: none)"""
    hidden: int = 128
    """width of the two hidden layers of the actor and of the critic"""
    runs_dir: str = "runs"
    """TensorBoard and output folder"""

    # filled in at runtime
    batch_size: int = 0
    """the batch size (computed in runtime)"""
    minibatch_size: int = 0
    """the mini-batch size (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations (computed in runtime)"""


RUNTIME_FIELDS = ("batch_size", "minibatch_size", "num_iterations")


def field_docstrings(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass, read from its source."""
    body = ast.parse(inspect.getsource(cls)).body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(following, ast.Expr):
            docs[node.target.id] = following.value.value
    return docs


def parse_args() -> Args:
    """``Args`` from the command line (``--total-timesteps 1000``); help from the docstrings."""
    docs = field_docstrings(Args)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for f in dataclasses.fields(Args):
        if f.name in RUNTIME_FIELDS:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=docs[f.name])
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default, help=docs[f.name])
    return Args(**vars(parser.parse_args()))


def make_env(args: Args, depth_scale: float):
    """A thunk building one training env (AutoTTS-v0 with episode statistics)."""

    def thunk():
        env = gym.make(
            "AutoTTS-v0",
            store=None if args.store == "default" else args.store,
            split=args.train_splits.split(","),
            cost_weight=args.cost_weight,
            budget_tokens=args.budget_tokens or None,
            max_branches=args.max_branches,
            depth_scale=depth_scale,
        )
        return gym.wrappers.RecordEpisodeStatistics(env)

    return thunk


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self, obs_size: int, num_actions: int, hidden: int):
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_size, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_size, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, num_actions), std=0.01),
        )

    def get_value(self, x):
        return self.critic(x)

    def get_action_and_value(self, x, mask, action=None):
        logits = torch.where(mask, self.actor(x), HUGE_NEGATIVE)
        probs = Categorical(logits=logits)
        if action is None:
            action = probs.sample()
        # Masked-out actions have probability ~0; leave them out of the entropy.
        p_log_p = torch.where(mask, probs.probs * probs.logits, 0.0)
        return action, probs.log_prob(action), -p_log_p.sum(-1), self.critic(x)


def evaluate_agent(agent: Agent, args: Args, observation_config: ObservationConfig) -> dict:
    """The greedy policy on the held-out splits, through the project's evaluator."""

    def logits(observation: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return agent.actor(torch.from_numpy(observation).reshape(1, -1))[0].numpy()

    budget = args.budget_tokens or None
    controller = PolicyController(
        logits,
        observation_config,
        budget_intervals_of=lambda delta: None if budget is None else math.floor(budget / delta),
        params={"cost_weight": args.cost_weight},
    )
    store = load_store(None if args.store == "default" else args.store)
    splits = store.select(args.eval_splits.split(","))
    options = make_options(args.eval_seeds, budget_tokens=budget)
    evaluations = evaluate_many([(controller, s) for s in splits], options, workers=1)
    out = {}
    for ev in evaluations:
        correct, tokens = ev.records["correct"], ev.records["tokens"]
        out[ev.split.name] = {
            "accuracy": 100.0 * float(correct.mean()),
            "tokens": float(tokens.mean()),
            "reward": float((correct - args.cost_weight * tokens).mean()),
        }
    out["all"] = {k: float(np.mean([v[k] for v in out.values()])) for k in ("accuracy", "tokens", "reward")}
    return out


if __name__ == "__main__":
    args = parse_args()
    args.batch_size = int(args.num_envs * args.num_steps)
    args.minibatch_size = int(args.batch_size // args.num_minibatches)
    args.num_iterations = args.total_timesteps // args.batch_size
    run_name = f"AutoTTS-v0__{args.exp_name}__w{args.cost_weight:g}__{args.seed}__{int(time.time())}"
    writer = SummaryWriter(f"{args.runs_dir}/{run_name}")
    writer.add_text(
        "hyperparameters",
        "|param|value|\n|-|-|\n" + "\n".join(f"|{key}|{value}|" for key, value in vars(args).items()),
    )

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    torch.set_num_threads(1)
    device = torch.device("cpu")

    # env setup: one depth scale for training and evaluation (the longest training branch)
    train_splits = load_store(None if args.store == "default" else args.store).select(args.train_splits.split(","))
    depth_scale = float(max(int(np.diff(s.probe_offsets).max(initial=0)) + 1 for s in train_splits))
    observation_config = ObservationConfig(args.max_branches, depth_scale)
    vector_env = gym.vector.AsyncVectorEnv if args.async_envs else gym.vector.SyncVectorEnv
    envs = vector_env(
        [make_env(args, depth_scale) for _ in range(args.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,  # infos hold the new episode's mask at once
    )
    assert isinstance(envs.single_action_space, gym.spaces.Discrete), "only discrete action space is supported"
    obs_size, num_actions = envs.single_observation_space.shape[0], int(envs.single_action_space.n)

    agent = Agent(obs_size, num_actions, args.hidden).to(device)
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    # ALGO Logic: Storage setup
    obs = torch.zeros((args.num_steps, args.num_envs, obs_size)).to(device)
    masks = torch.zeros((args.num_steps, args.num_envs, num_actions), dtype=torch.bool).to(device)
    actions = torch.zeros((args.num_steps, args.num_envs), dtype=torch.long).to(device)
    logprobs = torch.zeros((args.num_steps, args.num_envs)).to(device)
    rewards = torch.zeros((args.num_steps, args.num_envs)).to(device)
    dones = torch.zeros((args.num_steps, args.num_envs)).to(device)
    values = torch.zeros((args.num_steps, args.num_envs)).to(device)

    # TRY NOT TO MODIFY: start the game
    global_step = 0
    start_time = time.time()
    next_obs, infos = envs.reset(seed=args.seed)
    next_obs = torch.Tensor(next_obs).to(device)
    next_mask = torch.as_tensor(infos["action_mask"], dtype=torch.bool)
    next_done = torch.zeros(args.num_envs).to(device)

    for iteration in range(1, args.num_iterations + 1):
        # Annealing the rate if instructed to do so.
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / args.num_iterations
            optimizer.param_groups[0]["lr"] = frac * args.learning_rate

        finished_returns, finished_lengths, finished_correct, finished_tokens = [], [], [], []
        for step in range(0, args.num_steps):
            global_step += args.num_envs
            obs[step] = next_obs
            masks[step] = next_mask
            dones[step] = next_done

            # ALGO LOGIC: action logic
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs, next_mask)
                values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob

            # TRY NOT TO MODIFY: execute the game and log data.
            next_obs, reward, terminations, truncations, infos = envs.step(action.cpu().numpy())
            next_done = np.logical_or(terminations, truncations)
            rewards[step] = torch.tensor(reward).to(device).view(-1)
            next_obs, next_done = torch.Tensor(next_obs).to(device), torch.Tensor(next_done).to(device)
            next_mask = torch.as_tensor(infos["action_mask"], dtype=torch.bool)

            if "final_info" in infos:
                final = infos["final_info"]
                for i in np.flatnonzero(infos["_final_info"]):
                    finished_returns.append(float(final["episode"]["r"][i]))
                    finished_lengths.append(int(final["episode"]["l"][i]))
                    finished_correct.append(bool(final["result"][i].correct))
                    finished_tokens.append(int(final["result"][i].tokens))

        if finished_returns:
            writer.add_scalar("charts/episodic_return", np.mean(finished_returns), global_step)
            writer.add_scalar("charts/episodic_length", np.mean(finished_lengths), global_step)
            writer.add_scalar("charts/accuracy", 100.0 * np.mean(finished_correct), global_step)
            writer.add_scalar("charts/tokens", np.mean(finished_tokens), global_step)

        # bootstrap value if not done
        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards).to(device)
            lastgaelam = 0
            for t in reversed(range(args.num_steps)):
                if t == args.num_steps - 1:
                    nextnonterminal = 1.0 - next_done
                    nextvalues = next_value
                else:
                    nextnonterminal = 1.0 - dones[t + 1]
                    nextvalues = values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
            returns = advantages + values

        # flatten the batch
        b_obs = obs.reshape((-1, obs_size))
        b_masks = masks.reshape((-1, num_actions))
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape(-1)
        b_advantages = advantages.reshape(-1)
        b_returns = returns.reshape(-1)
        b_values = values.reshape(-1)

        # Optimizing the policy and value network
        b_inds = np.arange(args.batch_size)
        clipfracs = []
        for _epoch in range(args.update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, args.batch_size, args.minibatch_size):
                end = start + args.minibatch_size
                mb_inds = b_inds[start:end]

                _, newlogprob, entropy, newvalue = agent.get_action_and_value(
                    b_obs[mb_inds], b_masks[mb_inds], b_actions.long()[mb_inds]
                )
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()

                with torch.no_grad():
                    # calculate approx_kl http://joschu.net/blog/kl-approx.html
                    old_approx_kl = (-logratio).mean()
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs += [((ratio - 1.0).abs() > args.clip_coef).float().mean().item()]

                mb_advantages = b_advantages[mb_inds]
                if args.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)

                # Policy loss
                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()

                # Value loss
                newvalue = newvalue.view(-1)
                if args.clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                    v_clipped = b_values[mb_inds] + torch.clamp(
                        newvalue - b_values[mb_inds],
                        -args.clip_coef,
                        args.clip_coef,
                    )
                    v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                    v_loss_max = torch.max(v_loss_unclipped, v_loss_clipped)
                    v_loss = 0.5 * v_loss_max.mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()

                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

            if args.target_kl and approx_kl > args.target_kl:
                break

        y_pred, y_true = b_values.cpu().numpy(), b_returns.cpu().numpy()
        var_y = np.var(y_true)
        explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y

        # TRY NOT TO MODIFY: record rewards for plotting purposes
        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
        writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
        writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
        writer.add_scalar("losses/entropy", entropy_loss.item(), global_step)
        writer.add_scalar("losses/old_approx_kl", old_approx_kl.item(), global_step)
        writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
        writer.add_scalar("losses/clipfrac", np.mean(clipfracs), global_step)
        writer.add_scalar("losses/explained_variance", explained_var, global_step)
        sps = int(global_step / (time.time() - start_time))
        print(f"step {global_step}: SPS {sps}, return {np.mean(finished_returns or [np.nan]):.3f}")
        writer.add_scalar("charts/SPS", sps, global_step)

    envs.close()
    out = Path(args.runs_dir) / run_name
    torch.save({"agent": agent.state_dict(), "args": vars(args), "depth_scale": depth_scale}, out / "agent.pt")

    # held-out evaluation, the same protocol as every controller
    results = evaluate_agent(agent, args, observation_config)
    for split, m in results.items():
        prefix = "eval" if split == "all" else f"eval/{split}"
        for key, value in m.items():
            writer.add_scalar(f"{prefix}/{key}", value, global_step)
        print(f"eval {split}: accuracy {m['accuracy']:.1f}%, tokens {m['tokens']:.0f}, reward {m['reward']:.4f}")
    (out / "eval.json").write_text(json.dumps(results, indent=2) + "\n")
    writer.close()
