"""The console's pages: Jinja2 templates (``templates/``) with autoescaping on, and one stylesheet.

Nothing is fetched from a CDN: the console works offline. Statuses carry words as well as
colours, so they read without colour, and every action is a link or a form button, so the
keyboard reaches all of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

TEMPLATES = Path(__file__).with_name("templates")


def environment() -> Any:
    """The templates, autoescaped: a key such as ``<script>`` renders as text."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from markupsafe import Markup

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True))
    env.globals["style"] = Markup((TEMPLATES / "style.css").read_text())  # ours, not user input
    env.globals["quote"] = lambda text: quote(str(text), safe="/")
    # JSON to read in a <pre>: plain text that autoescaping then makes safe (tojson is for <script>)
    env.filters["pretty"] = lambda value: json.dumps(value, indent=1, ensure_ascii=False)
    return env
