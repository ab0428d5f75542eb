"""The voting helpers under the path controllers written before the layout of issue 17
import (``from autotts_gym.voting import majority``), kept for them and for the committed
discovery runs (discovery/runs/): the same module as :mod:`autotts_gym.engine.voting`."""

import sys

from autotts_gym.engine import voting

sys.modules[__name__] = voting
