"""Tables, paired comparisons, Pareto plots, TensorBoard and the published Table 1: what
evaluation results become. Imports evaluation, the engine's voting, data and utils."""
