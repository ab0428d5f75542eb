"""PPO on AutoTTS-v0: it learns, its controller matches the env, TensorBoard, the wrapper."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("sb3_contrib")

import autotts_gym  # noqa: E402, F401  (registers AutoTTS-v0)
from agents.base import Controller  # noqa: E402
from agents.ppo.config import TrainConfig, config_path_for  # noqa: E402
from agents.ppo.policy import PPOController, load_sb3_model  # noqa: E402
from agents.ppo.train import build_model, make_vec_env, prepare, train  # noqa: E402
from agents.ppo.wrappers import AdmissibleActionWrapper, admissible_or_fallback  # noqa: E402
from agents.registry import make_controller  # noqa: E402
from autotts_gym.cli.main import main as cli_main  # noqa: E402
from autotts_gym.data.sources import load_store  # noqa: E402
from autotts_gym.data.store import Split, SplitInfo, Store  # noqa: E402
from autotts_gym.engine import Episode, EpisodeResult  # noqa: E402
from autotts_gym.envs.spaces import ANSWER, EpisodeObserver, ObservationConfig, apply_action  # noqa: E402
from autotts_gym.evaluation.evaluate import EpisodeOptions, evaluate_many  # noqa: E402

COST_WEIGHT = 2e-4  # a whole branch (2000 tokens) costs 0.4, one interval plus a probe 0.02
MAX_BRANCHES = 8
RESULT_FIELDS = (
    "answer",
    "correct",
    "tokens",
    "sequential_tokens",
    "intervals",
    "branches_opened",
    "probes",
    "actions",
)


def easy_split(name: str, seed: int, questions: int = 12, branches: int = 16) -> Split:
    """Branches whose every probe already shows their final answer (70% gold, else one
    of three wrong answers) and that are long (19 probes, 2000 tokens, Delta 100):
    opening a branch and probing it once is as informative as reading it whole at a
    twentieth of the cost, and answering before anything is revealed is always wrong."""
    rng = np.random.default_rng(seed)
    pools = []
    for _ in range(questions):
        pool = []
        for _ in range(branches):
            answer = "g" if rng.random() < 0.7 else f"w{rng.integers(3)}"
            pool.append(([answer] * 19, 2000, answer))
        pools.append(pool)
    info = SplitInfo(model="easy", benchmark=name, interval_tokens=100)
    return Split.from_lists(info, [f"q{i}" for i in range(questions)], ["g"] * questions, pools)


@pytest.fixture(scope="module")
def easy_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "easy"
    Store([easy_split("train", 0), easy_split("test", 1)]).save(path)
    return path


def small_config(store: Path, out: Path, **overrides) -> TrainConfig:
    settings = {
        "store": str(store),
        "splits": ["easy/train"],
        "eval_splits": ["easy/test"],
        "total_timesteps": 4096,
        "cost_weight": COST_WEIGHT,
        "max_branches": MAX_BRANCHES,
        "n_envs": 4,
        "n_steps": 64,
        "batch_size": 64,
        "n_epochs": 4,
        "learning_rate": 1e-3,
        "net_arch": [64, 64],
        "eval_freq": 0,
        "eval_seeds": 2,
        "checkpoint_freq": 0,
        "out": str(out),
    }
    settings.update(overrides)
    return TrainConfig(**settings)


class RandomMaskedController(Controller):
    """Uniform among the admissible actions (the env's own masks), seeded per episode."""

    name = "random-masked"

    def run(self, episode: Episode) -> EpisodeResult:
        observer = EpisodeObserver(ObservationConfig(MAX_BRANCHES))
        episode.order = episode.order[:MAX_BRANCHES]
        observer.reset(episode)
        rng = np.random.default_rng([episode.question.index, len(episode.order), *episode.order])
        while not episode.done:
            observer.update(apply_action(episode, rng.choice(np.flatnonzero(observer.mask)), MAX_BRANCHES))
        return episode.result


def mean_return(controller: Controller, store: Path, seeds: int = 5) -> float:
    split = load_store(str(store)).select(["easy/test"])[0]
    [ev] = evaluate_many([(controller, split)], EpisodeOptions(seeds=tuple(range(seeds))), workers=1)
    return float((ev.records["correct"] - COST_WEIGHT * ev.records["tokens"]).mean())


@pytest.fixture(scope="module")
def trained(easy_store: Path, tmp_path_factory: pytest.TempPathFactory):
    """One MaskablePPO run with TensorBoard, periodic evaluation and checkpoints."""
    root = tmp_path_factory.mktemp("run")
    config = small_config(
        easy_store,
        root / "out",
        tensorboard=str(root / "tb"),
        eval_freq=1024,
        checkpoint_freq=1024,
        seed=3,
        total_timesteps=3072,
    )
    return train(config)


# ------------------------------------------------------------------ learning
def test_maskable_ppo_beats_a_random_masked_policy_on_every_seed(easy_store: Path, tmp_path: Path) -> None:
    random_return = mean_return(RandomMaskedController(), easy_store)
    for seed in range(3):
        config, store = prepare(small_config(easy_store, tmp_path / f"s{seed}", seed=seed))
        untrained = PPOController.from_model(build_model(config, make_vec_env(config, store)), config)
        untrained_return = mean_return(untrained, easy_store)
        trained_return = mean_return(PPOController.load(train(config).model), easy_store)
        # Probing one branch and answering returns about 0.68, reading one whole 0.3; the
        # random masked policy (about -0.1) often answers before anything is revealed.
        assert trained_return > random_return + 0.3, (seed, random_return, trained_return)
        assert trained_return > untrained_return + 0.2, (seed, untrained_return, trained_return)


# ------------------------------------------------------------- one protocol
def run_through_env(model, config: TrainConfig, store: Path, question: int, seed: int) -> EpisodeResult:
    """The SB3 way: ``model.predict`` on the env's observations (and masks)."""
    env = gym.make(
        "AutoTTS-v0",
        store=str(store),
        split="easy/test",
        shuffle="release",
        disable_env_checker=True,
        **config.env_kwargs(),
    )
    if config.algo == "ppo":
        env = AdmissibleActionWrapper(env)
    obs, info = env.reset(options={"question": question, "order_seed": seed})
    while True:
        masks = info["action_mask"] if config.algo == "maskable" else None
        kwargs = {"action_masks": masks} if masks is not None else {}
        action, _ = model.predict(obs, deterministic=True, **kwargs)
        obs, _, terminated, _, info = env.step(int(action))
        if terminated:
            return info["result"]


def assert_same_results_as_env(model_path: Path, store: Path) -> None:
    controller = make_controller(f"ppo:{model_path}")  # the registry's door
    config = TrainConfig.load(config_path_for(model_path))
    model = load_sb3_model(model_path, config.algo)
    split = load_store(str(store)).select(["easy/test"])[0]
    # Two forked workers, as the evaluator runs by default; episodes hold all 16 branches.
    [ev] = evaluate_many([(controller, split)], EpisodeOptions(seeds=(0, 1, 2)), workers=2)
    assert len(ev.records["question"]) == 36
    for i, (q, seed) in enumerate(zip(ev.records["question"], ev.records["seed"])):
        expected = run_through_env(model, config, store, int(q), int(seed))
        for field in RESULT_FIELDS:
            assert ev.records[field][i] == getattr(expected, field), (field, q, seed)


def test_ppo_controller_in_the_evaluator_matches_the_policy_in_the_env(trained, easy_store: Path) -> None:
    assert_same_results_as_env(trained.model, easy_store)


def test_checkpoints_and_config_are_saved_with_the_model(trained) -> None:
    config = json.loads(trained.config.read_text())
    assert config["depth_scale"] == 20.0 and config["cost_weight"] == COST_WEIGHT
    checkpoints = sorted(trained.checkpoints.glob("model_*_steps.zip"))
    assert len(checkpoints) == 3
    controller = PPOController.load(checkpoints[0])  # finds ../config.json
    assert controller.params()["cost_weight"] == COST_WEIGHT


# -------------------------------------------------------------- TensorBoard
def test_tensorboard_holds_training_curves_and_eval_scalars(trained) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained.tensorboard))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("rollout/ep_rew_mean", "train/value_loss", "train/entropy_loss", "time/fps", "rollout/accuracy"):
        assert tag in tags
    for metric in ("accuracy", "tokens", "reward"):
        values = events.Scalars(f"eval/{metric}")
        assert [v.step for v in values] == [1024, 2048, 3072]  # periodic, the last one at the end
        assert all(np.isfinite(v.value) for v in values)
        assert f"eval/easy/test/{metric}" in tags
    final = trained.final_eval["all"]
    assert events.Scalars("eval/accuracy")[-1].value == pytest.approx(final["accuracy"])
    assert (trained.eval_log.read_text().count("\n")) == 1 + 3 * 2  # header, (split + all) x 3


# ------------------------------------------------------------------ plain PPO
class AdmissibilityRecorder(gym.Wrapper):
    """Between the fallback wrapper and the env: records every action the env receives."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.received = self.inadmissible = 0

    def step(self, action):
        self.received += 1
        self.inadmissible += not self.env.unwrapped.action_masks()[int(action)]
        return super().step(action)


def test_plain_ppo_through_the_wrapper_never_takes_an_inadmissible_action(easy_store: Path, tmp_path: Path) -> None:
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    config, wrappers = small_config(easy_store, tmp_path, algo="ppo", depth_scale=20.0), []

    def make():
        recorder = AdmissibilityRecorder(
            gym.make(
                "AutoTTS-v0", store=str(easy_store), split="easy/train", disable_env_checker=True, **config.env_kwargs()
            )
        )
        wrapper = AdmissibleActionWrapper(recorder)
        wrappers.append((recorder, wrapper))
        return Monitor(wrapper)

    model = build_model(config, DummyVecEnv([make, make]))
    model.learn(1024)
    assert sum(r.received for r, _ in wrappers) >= 1024
    assert sum(r.inadmissible for r, _ in wrappers) == 0
    assert sum(w.fallbacks for _, w in wrappers) > 0  # the untrained policy did choose masked-out actions


def test_plain_ppo_controller_matches_the_wrapped_env(easy_store: Path, tmp_path: Path) -> None:
    result = train(small_config(easy_store, tmp_path, algo="ppo", total_timesteps=1024))
    assert_same_results_as_env(result.model, easy_store)


def test_fallback_is_answer() -> None:
    mask = np.array([True, False, True])
    assert admissible_or_fallback(2, mask) == 2
    assert admissible_or_fallback(1, mask) == ANSWER
    assert admissible_or_fallback(7, mask) == ANSWER


# --------------------------------------------------------------- protocol errors
def test_a_budget_mismatch_is_an_error_naming_the_fix(trained, easy_store: Path) -> None:
    controller = PPOController.load(trained.model)
    split = load_store(str(easy_store)).select(["easy/test"])[0]
    with pytest.raises(ValueError, match="budget-tokens"):
        controller(EpisodeOptions(budget_tokens=1000).episode(split, 0, 0))


def test_a_model_without_its_config_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    lonely = tmp_path / "a" / "b" / "model.zip"
    lonely.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no training config"):
        PPOController.load(lonely)


def test_train_ppo_command_writes_a_model_the_registry_loads(easy_store: Path, tmp_path: Path, capsys) -> None:
    code = cli_main(
        ["train-ppo", "--store", str(easy_store), "--splits", "easy/train", "--timesteps", "256", "--n-envs", "2",
         "--cost-weight", str(COST_WEIGHT), "--max-branches", "8", "--eval-freq", "0", "--checkpoint-freq", "0",
         "--tensorboard", str(tmp_path / "tb"), "--out", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "steps/s" in captured.out
    # Alive even when stderr is not a terminal: a bar over the steps, on stderr.
    assert "train: 100%" in captured.err and "256/256" in captured.err
    controller = make_controller(f"ppo:{tmp_path / 'out' / 'model.zip'}", overrides={"name": "ppo-test"})
    assert controller.name == "ppo-test"
