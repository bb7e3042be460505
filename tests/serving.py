"""``thumbs serve`` as a user starts it: a separate process on a free port, its output captured."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from thumbs.local.stack import free_port

ROOT = Path(__file__).resolve().parent.parent


def start_serve(state: Path) -> tuple[subprocess.Popen, int]:
    """The serve process (stop it with SIGINT) and the port it will open once its stack is ready."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "thumbs", "--state", str(state), "serve", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return process, port
