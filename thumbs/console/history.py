"""What happened to each state of a run, read from its execution history (a pure function, no I/O).

The console colours each state of the definition by this: not entered, succeeded, retried
(succeeded after failed attempts), caught (a Catch took over), failed; and lists every
attempt of a Task with its timing and error, and each Map iteration with its outcome.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ATTEMPT_ENDS = {
    "LambdaFunctionSucceeded": "succeeded",
    "LambdaFunctionFailed": "failed",
    "LambdaFunctionTimedOut": "timed out",
    "TaskSucceeded": "succeeded",
    "TaskFailed": "failed",
    "TaskTimedOut": "timed out",
}


@dataclass
class Attempt:
    """One try of a Task: when it started, how long it took, how it ended."""

    started: str
    seconds: float | None = None
    outcome: str = "running"
    error: str | None = None
    cause: str | None = None


@dataclass
class StateRun:
    """One state in one run: its outcome, its input and output, and its attempts."""

    name: str
    kind: str
    outcome: str = "not entered"
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    entered: str | None = None
    seconds: float | None = None
    attempts: list[Attempt] = field(default_factory=list)
    iterations: dict[int, str] = field(default_factory=dict)  # Map: index -> outcome
    labels: dict[int, str] = field(default_factory=dict)  # Map: index -> what the item is (``256 px``)


def _details(event: dict[str, Any]) -> dict[str, Any]:
    return next((v for k, v in event.items() if k.endswith("EventDetails")), None) or {}


def _seconds(start: str, end: str) -> float:
    def moment(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return (moment(end) - moment(start)).total_seconds()


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def _item_labels(items_path: str, state_input: Any, iterations: dict[int, str]) -> dict[int, str]:
    """What each Map item is, from the state's input at ``ItemsPath``: a size (``256 px``), else the item."""
    items: Any = state_input
    for part in items_path.removeprefix("$").strip(".").split("."):
        if part:
            items = items.get(part) if isinstance(items, dict) else None
    labels = {}
    for index in iterations:
        item = items[index] if isinstance(items, list) and 0 <= index < len(items) else None
        size = item.get("size") if isinstance(item, dict) else None
        labels[index] = f"{size} px" if isinstance(size, int) else str(index)
    return labels


def state_runs(definition: dict[str, Any], events: list[dict[str, Any]], status: str) -> list[StateRun]:
    """Each top-level state of ``definition``, in definition order, with what ``events`` say it did.

    A state's events are followed along ``previousEventId`` from the event that entered it,
    so concurrent Map iterations never mix their attempts with another state's.
    """
    states = definition.get("States", {})
    runs = {name: StateRun(name, spec.get("Type", "")) for name, spec in states.items()}
    owner: dict[int, str] = {}  # event id -> the top-level state it belongs to
    for event in events:
        kind, details = event["type"], _details(event)
        name = details.get("name") if kind.endswith(("StateEntered", "StateExited")) else None
        if kind.endswith("StateEntered") and name in runs:
            owner[event["id"]] = name
            run = runs[name]
            run.outcome, run.entered, run.input = "running", event["timestamp"], _json(details.get("input"))
            run.attempts, run.iterations, run.error, run.cause = [], {}, None, None
            continue
        state = owner.get(event.get("previousEventId", -1))
        if state is None:
            continue
        owner[event["id"]] = state
        run = runs[state]
        if kind.endswith("StateExited") and name == state:
            if run.attempts and run.attempts[-1].outcome != "succeeded":
                run.outcome = "caught"  # its last attempt failed, yet it exited: a Catch took the error
            elif any(a.outcome != "succeeded" for a in run.attempts):
                run.outcome = "retried"
            else:
                run.outcome = "succeeded"
            run.output = _json(details.get("output"))
            run.seconds = _seconds(run.entered or event["timestamp"], event["timestamp"])
        elif kind.endswith("Scheduled") and kind.startswith(("LambdaFunction", "Task")) and run.kind == "Task":
            run.attempts.append(Attempt(started=event["timestamp"]))
        elif kind in ATTEMPT_ENDS and run.attempts and run.kind == "Task":
            attempt = run.attempts[-1]
            attempt.outcome, attempt.seconds = ATTEMPT_ENDS[kind], _seconds(attempt.started, event["timestamp"])
            attempt.error, attempt.cause = details.get("error"), details.get("cause")
            if attempt.error:
                run.error, run.cause = attempt.error, attempt.cause
        elif kind in ("MapIterationSucceeded", "MapIterationFailed", "MapIterationAborted", "MapIterationStarted"):
            index = int(details.get("index", -1))
            run.iterations[index] = {"MapIterationStarted": "running"}.get(kind, kind[len("MapIteration") :].lower())
        elif kind.endswith(("StateFailed", "Failed")) and kind.startswith(("Map", "Task", "Parallel")):
            run.error = run.error or details.get("error")
    for name, run in runs.items():
        if run.kind == "Map" and run.iterations:
            run.labels = _item_labels(states[name].get("ItemsPath", "$"), run.input, run.iterations)
    order = list(states)
    entered = [r for r in runs.values() if r.outcome != "not entered"]
    for run in entered:
        if run.outcome != "running":
            continue
        later = [r for r in entered if r.entered and run.entered and r.entered > run.entered and r.name != run.name]
        if later:  # it handed over without exiting normally: a Catch took the run on
            run.outcome = "caught"
        elif status in ("FAILED", "TIMED_OUT", "ABORTED"):
            run.outcome = status.lower().replace("_", " ")
    return sorted(runs.values(), key=lambda r: order.index(r.name))


def definition_graph(definition: dict[str, Any], runs: list[StateRun]) -> dict[str, Any]:
    """Nodes and edges of the top-level states, from the definition itself, each node with its outcome.

    Edges are every way out of a state: ``Next``, a Choice's rules and ``Default``, and each
    ``Catch``; a state that ends the run points at the End node. The page lays this out with
    dagre; nothing here knows where a node goes.
    """
    states = definition.get("States", {})
    outcome = {run.name: run for run in runs}
    nodes = [{"id": "Start", "kind": "start", "outcome": "succeeded"}]
    edges = [{"from": "Start", "to": definition.get("StartAt"), "kind": "next"}]
    for name, spec in states.items():
        run = outcome.get(name)
        iterations = run.iterations if run else {}
        nodes.append(
            {
                "id": name,
                "kind": spec.get("Type", ""),
                "outcome": run.outcome if run else "not entered",
                "iterations": {
                    (run.labels.get(k) if run else None) or str(k): v for k, v in sorted(iterations.items())
                },
            }
        )
        for rule in spec.get("Choices", []):
            edges.append({"from": name, "to": rule.get("Next"), "kind": "choice"})
        if spec.get("Default"):
            edges.append({"from": name, "to": spec["Default"], "kind": "default"})
        if spec.get("Next"):
            edges.append({"from": name, "to": spec["Next"], "kind": "next"})
        for catch in spec.get("Catch", []):
            edges.append({"from": name, "to": catch.get("Next"), "kind": "catch"})
        if spec.get("End") or spec.get("Type") in ("Succeed", "Fail"):
            edges.append({"from": name, "to": "End", "kind": "next"})
    nodes.append({"id": "End", "kind": "end", "outcome": "succeeded"})
    unique = {(e["from"], e["to"], e["kind"]): e for e in edges if e["to"]}
    return {"nodes": nodes, "edges": list(unique.values())}


def timeline(runs: list[StateRun], events: list[dict[str, Any]]) -> dict[str, Any]:
    """Each entered state as a bar on the run's clock: where it started and how long it took, in percent."""
    if not events:
        return {"bars": [], "total": 0.0}
    start, end = events[0]["timestamp"], events[-1]["timestamp"]
    total = max(_seconds(start, end), 1e-6)
    bars = []
    for run in sorted((r for r in runs if r.entered), key=lambda r: r.entered or ""):
        offset = _seconds(start, run.entered or start)
        seconds = run.seconds if run.seconds is not None else _seconds(run.entered or start, end)
        bars.append(
            {
                "name": run.name,
                "outcome": run.outcome,
                "seconds": seconds,
                "attempts": len(run.attempts),
                "left": round(100 * offset / total, 2),
                "width": round(max(100 * seconds / total, 0.3), 2),
            }
        )
    return {"bars": bars, "total": total}
