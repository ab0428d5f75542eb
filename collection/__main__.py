"""``python -m collection ...``: the collection script (same flags as ``autotts collect``)."""

import sys

from collection.collect import main

if __name__ == "__main__":
    sys.exit(main())
