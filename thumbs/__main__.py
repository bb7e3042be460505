"""``python -m thumbs``: the same as the ``thumbs`` command."""

import sys

from thumbs.cli import entry

sys.exit(entry())
