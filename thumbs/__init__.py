"""``thumbs``: the operator's tool. Runs the pipeline on this machine, or works on a deployed stack.

Where things are:
* ``cli.py``: argument parsing and dispatch, nothing else;
* ``local/``: the embedded default (the template deployed on moto, the local Lambda runtime);
* ``aws.py``: the same commands against a deployed stack (``--stack NAME``);
* ``cost.py``: ``thumbs cost``, with its dated price table ``prices.json``;
* ``template.py``: the synthesized template, the one description of the pipeline both read;
* ``terminal.py``: what the commands print, shared by the local and the AWS side.

``thumbs`` reads the CDK app (``pipeline/``) and the handler code (``functions/``) of the
checkout it is installed from; it never keeps a second description of either.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = PROJECT_ROOT / "functions"
