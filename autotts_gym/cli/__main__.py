"""``python -m autotts_gym.cli``: the same as ``autotts``."""

import sys

from autotts_gym.cli.main import main

sys.exit(main())
