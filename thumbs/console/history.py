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
