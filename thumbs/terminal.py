"""What ``thumbs`` prints and reads at the terminal, the same for the local engine and ``--stack``.

One execution history renderer serves both sides, so a run looks the same wherever it ran.
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(stderr=True)  # progress and problems
out = Console(width=None if sys.stdout.isatty() else 160)  # results


def progress(label: str) -> Any:
    """The bar a command shows while it waits for executions: label, bar, done/total, time taken."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False
    )


def parse_since(text: str) -> timedelta:
    """``30m``, ``24h``, ``7d``: how far back ``--since`` looks."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit() or int(text[:-1]) == 0:
        raise ValueError(f"--since {text!r}: expected a number and a unit m, h or d, like 24h")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


def duration(start: str, stop: str | None) -> str:
    """``1.23 s`` between two ISO timestamps; empty while the run has not stopped."""
    if not stop:
        return ""
    return f"{(datetime.fromisoformat(stop) - datetime.fromisoformat(start)).total_seconds():.2f} s"


def history_rows(execution: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(elapsed, event type, state, duration in state, error) for every event, in order."""
    events = execution["events"]
    start = datetime.fromisoformat(events[0]["timestamp"]) if events else None
    entered: dict[str, datetime] = {}
    rows = []
    state = ""
    for event in events:
        when = datetime.fromisoformat(event["timestamp"])
        kind = event["type"]
        details = next((v for k, v in event.items() if k.endswith("EventDetails")), {}) or {}
        elapsed = ""
        if kind.endswith("StateEntered"):
            state = details.get("name", state)
            entered[state] = when
        elif kind.endswith("StateExited"):
            state = details.get("name", state)
            if state in entered:
                elapsed = f"{(when - entered[state]).total_seconds() * 1000:.0f} ms"
        error = details.get("error", "")
        rows.append((f"+{(when - start).total_seconds() * 1000:.0f} ms", kind, state, elapsed, error))
    return rows


def print_history(execution: dict[str, Any]) -> int:
    """Every event with its state and time in state, the failed attempts per state, and the error."""
    table = Table(title=f"{execution['name']}  {execution['status']}")
    for column in ("at", "event", "state", "duration", "error"):
        table.add_column(column)
    rows = history_rows(execution)
    for row in rows:
        table.add_row(*row)
    out.print(table)
    failures = Counter(r[2] for r in rows if r[1] in ("LambdaFunctionFailed", "LambdaFunctionTimedOut"))
    for name, count in sorted(failures.items()):
        out.print(f"{name}: {count} failed attempt(s) before its outcome")
    if execution.get("error"):
        out.print(f"Execution failed: {execution['error']}: {execution.get('cause') or ''}"[:400])
    return 0
