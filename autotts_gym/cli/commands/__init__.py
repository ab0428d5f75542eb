"""The subcommands of ``autotts``: one module each (``add_arguments(parser)`` and
``run(args) -> int``), listed in :data:`COMMANDS` so the command line can show them
all while importing only the one that runs (``autotts --help`` loads no controller,
matplotlib, tensorboard or torch)."""

# (name, module in this package, one-line help), in the order ``autotts --help`` lists them.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("demo", "demo", "Play a few simple policies through AutoTTS-v0 on a store (default: the embedded one) and print a table."),
    ("import", "import_release", "Convert release JSON files (a file, several, or a folder of <model>/<benchmark>.json) into a store."),
    ("info", "info", "Show the models, benchmarks, questions, branches and token statistics of a store."),
    ("synth", "synth", "Generate a synthetic store whose statistics follow one of the calibrated Qwen3 profiles."),
    ("evaluate", "evaluate", "Evaluate a controller with the paper's protocol: accuracy, tokens and sequential tokens with confidence intervals."),
    ("compare", "compare", "Sweep several methods over betas: print a table, write results JSON/CSV, a Pareto plot and TensorBoard runs."),
    ("table", "table", "Print the paper's Table 1 (methods x benchmarks, accuracy and tokens) for every model, with pool reference rows."),
    ("plot", "plot", "Draw accuracy against tokens (log x, one curve per method) from a summary.json or results.json file."),
    ("discover", "discover", "Let an LLM (or a scripted folder) propose controllers, evaluate each one's beta sweep in a sandbox, feed back curves and traces."),
    ("train-ppo", "train_ppo", "Train a PPO policy on a store (MaskablePPO with the env's masks, or plain PPO); TensorBoard, checkpoints."),
    ("collect", "collect", "Build a replay store from a model and a question set with vLLM (offline engine or servers)."),
    ("run", "run", "Run a controller live against a model (vLLM in-process or servers); keep the run as a replay store."),
)
