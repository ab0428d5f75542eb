"""The evaluation protocol: branch orders (the release shuffle) and running controllers over
(question, seed) episodes. Imports the engine, data and utils; never reporting."""
