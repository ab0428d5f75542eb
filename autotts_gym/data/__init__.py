"""The replay data: the store, its validation, the release importer, synthetic stores and
opening a store from a path. Imports only autotts_gym.utils (and numpy, pyarrow)."""
