"""Small helpers every layer may use: progress bars and checks of user-given values.
Imports only the standard library (and tqdm)."""
