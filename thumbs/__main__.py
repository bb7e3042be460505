"""``python -m thumbs``: the same as the ``thumbs`` command."""

import sys

from thumbs.cli import main

sys.exit(main())
