"""The embedded default: the synthesized template deployed on moto, with a local Lambda runtime.

* ``stack.py``: one moto call per template resource, on a moto server on loopback;
* ``lambda_runtime.py`` and ``lambda_worker.py``: warm worker processes per function, forked
  from one zygote that holds the libraries, with Lambda's timeouts, memory limit and errors;
* ``moto_internals.py``: every touch of moto's private internals, each with a contract test;
* ``state.py``: the state folder (``.thumbs/``) that later ``thumbs`` processes read;
* ``session.py``: one command's deployed stack bound to the state folder;
* ``commands.py``: ``thumbs run``, ``executions``, ``history``, ``replay`` and ``serve``;
* ``samples.py``: the generated sample images of ``thumbs run`` with no path.
"""
