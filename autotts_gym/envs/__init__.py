"""The Gymnasium environment AutoTTS-v0 and its spaces: a thin door onto the engine.
Imports the engine, data, the evaluation's branch orders and utils; never reporting."""
