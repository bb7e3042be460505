"""The local console: the Step Functions console's view of every run, served at ``/_console/``.

* ``app.py``: the WSGI app ``thumbs serve`` mounts beside moto, and its JSON twins under ``api/``;
* ``history.py``: each state's outcome, attempts and Map iterations, read from a run's history;
* ``pages.py``: the server-rendered pages (Jinja2, autoescaped) and their stylesheet.
"""
