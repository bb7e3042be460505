"""``thumbs burst``: what a burst of uploads does on AWS, simulated against the deployed template.

A team that syncs 50,000 photos starts 50,000 executions within a minute. Whether they all
end SUCCEEDED depends on three things this simulation takes from the project itself:

* Lambda's concurrency: the account's limit (``--concurrency``, 1,000 by default on AWS) and
  each function's ``ReservedConcurrentExecutions`` from the template;
* how long each invocation holds its concurrency: ``thumbs cost``'s measured stage times for
  the configured memory and ``--avg-mp``, plus a cold start for each new execution environment;
* what a task does when Lambda throttles it: the ``Retry`` of each task state in the
  synthesized definition, jitter included (Step Functions draws a fully jittered delay
  uniformly between 0 and the capped backoff).

Every Invoke past the limit is throttled and retried as its retrier says; a task that runs out
of attempts fails its execution. The simulation runs the deployed policy, the policy throttles
would get without their own retrier (the transient one), and the bound a buffer could reach
at best (each Invoke waits its turn, nothing is ever throttled), so the choice is visible in
figures. docs/bursts.md explains the choice; ``thumbs cost`` prices the transitions.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pipeline.workflow import THROTTLE

COLD_START_MS = 800.0  # a new execution environment: Lambda's init plus our measured 260-286 ms import, rounded up
STAGES = ("Validate", "Resize", "Record")


@dataclass(frozen=True)
class Retrier:
    """One Retry clause: what a throttled task waits before each attempt, and how many it gets."""

    interval: float
    backoff: float
    max_attempts: int
    max_delay: float | None
    full_jitter: bool

    @classmethod
    def from_asl(cls, clause: dict[str, Any]) -> Retrier:
        return cls(
            interval=float(clause.get("IntervalSeconds", 1)),
            backoff=float(clause.get("BackoffRate", 2.0)),
            max_attempts=int(clause.get("MaxAttempts", 3)),
            max_delay=float(clause["MaxDelaySeconds"]) if "MaxDelaySeconds" in clause else None,
            full_jitter=clause.get("JitterStrategy") == "FULL",
        )

    def delay(self, retry: int, rng: random.Random) -> float:
        """The wait before retry number ``retry`` (1-based)."""
        capped = self.interval * self.backoff ** (retry - 1)
        if self.max_delay is not None:
            capped = min(capped, self.max_delay)
        return rng.uniform(0, capped) if self.full_jitter else capped

    def describe(self) -> str:
        cap = f", at most {self.max_delay:g} s apart" if self.max_delay is not None else ""
        jitter = ", full jitter" if self.full_jitter else ""
        return f"{self.max_attempts} attempts, {self.interval:g} s x{self.backoff:g}{cap}{jitter}"


def throttle_retrier(task: dict[str, Any], *, own: bool = True) -> Retrier | None:
    """The clause that catches a throttle on ``task``: the first matching one, as Step Functions picks.

    ``own=False``: the clause of Lambda's other service errors, which held throttles until they got
    their own (``pipeline/workflow.py``): what a throttle would meet without its retrier.
    """
    for clause in task.get("Retry", []):
        errors = clause["ErrorEquals"]
        if not own and "Lambda.ServiceException" in errors:
            return Retrier.from_asl(clause)
        if own and (THROTTLE in errors or "States.ALL" in errors or "States.TaskFailed" in errors):
            return Retrier.from_asl(clause)
    return None


def stage_tasks(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate, Resize (inside the Map) and Record: the three tasks an upload runs."""
    states = dict(definition["States"])
    for state in definition["States"].values():
        if state["Type"] == "Map":
            states.update(state.get("ItemProcessor", state.get("Iterator", {})).get("States", {}))
    return {name: states[name] for name in STAGES}


@dataclass
class Outcome:
    policy: str
    uploads: int
    succeeded: int = 0
    failed: int = 0
    throttles: int = 0
    drain_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    peak_concurrency: int = 0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@dataclass
class _Upload:
    arrived: float
    resizes_left: int = 0  # Map iterations not yet done
    resizes_unstarted: int = 0  # Map iterations waiting for the Map's MaxConcurrency
    failed: bool = False


def simulate(
    *,
    policy: str,
    retriers: dict[str, Retrier | None],
    durations_ms: dict[str, float],
    reserved: dict[str, int | None],
    uploads: int,
    seconds: float,
    concurrency: int,
    sizes: int,
    map_concurrency: int,
    queue: bool = False,
    seed: int = 1,
) -> Outcome:
    """Run ``uploads`` arriving evenly at random over ``seconds`` through Validate, the Map and Record.

    ``queue=True`` is the bound of a perfect buffer: an Invoke past the limit waits for the
    next free slot instead of being throttled.
    """
    rng = random.Random(seed)
    unreserved_pool = concurrency - sum(r or 0 for r in reserved.values())
    if unreserved_pool < 1 and any(r is None for r in reserved.values()):
        raise ValueError(f"the reserved concurrency leaves nothing of {concurrency} for the other functions")
    running = dict.fromkeys(STAGES, 0)
    environments = dict.fromkeys(STAGES, 0)  # warm execution environments per function
    waiting: deque[tuple[int, str, int]] = deque()  # queue mode: Invokes waiting for a slot
    outcome = Outcome(policy, uploads)
    events: list[tuple[float, int, str, int, str, int]] = []  # (time, seq, kind, upload, stage, attempt)
    sequence = 0

    def push(at: float, kind: str, upload: int, stage: str, attempt: int = 0) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(events, (at, sequence, kind, upload, stage, attempt))

    def fits(stage: str) -> bool:
        cap = reserved[stage]
        if cap is not None:
            return running[stage] < cap
        return sum(running[s] for s in STAGES if reserved[s] is None) < unreserved_pool

    def start(now: float, upload: int, stage: str) -> None:
        running[stage] += 1
        outcome.peak_concurrency = max(outcome.peak_concurrency, sum(running.values()))
        cold = running[stage] > environments[stage]
        environments[stage] = max(environments[stage], running[stage])
        took = durations_ms[stage] * rng.uniform(0.8, 1.2) + (COLD_START_MS if cold else 0.0)
        push(now + took / 1000, "done", upload, stage)

    state = [_Upload(arrived=rng.uniform(0, seconds)) for _ in range(uploads)]
    for index, upload in enumerate(state):
        push(upload.arrived, "invoke", index, "Validate", 1)
    finished_at = 0.0
    while events:
        now, _, kind, index, stage, attempt = heapq.heappop(events)
        upload = state[index]
        if kind == "invoke":
            if upload.failed:
                continue
            if fits(stage) and not (queue and waiting):
                start(now, index, stage)
            elif queue:
                waiting.append((index, stage, attempt))
            else:
                outcome.throttles += 1
                retrier = retriers[stage]
                if retrier is None or attempt > retrier.max_attempts:
                    upload.failed = True  # the task's error: the execution fails (a Map iteration fails the Map)
                    outcome.failed += 1
                    finished_at = max(finished_at, now)
                else:
                    push(now + retrier.delay(attempt, rng), "invoke", index, stage, attempt + 1)
            continue
        running[stage] -= 1
        while queue and waiting and fits(waiting[0][1]):
            waiting_index, waiting_stage, _ = waiting.popleft()
            start(now, waiting_index, waiting_stage)
        if upload.failed:
            continue
        if stage == "Validate":
            at_once = min(sizes, map_concurrency or sizes)
            upload.resizes_left, upload.resizes_unstarted = sizes, sizes - at_once
            for _ in range(at_once):
                push(now, "invoke", index, "Resize", 1)
        elif stage == "Resize":
            upload.resizes_left -= 1
            if upload.resizes_unstarted:
                upload.resizes_unstarted -= 1
                push(now, "invoke", index, "Resize", 1)
            elif upload.resizes_left == 0:
                push(now, "invoke", index, "Record", 1)
        else:
            outcome.succeeded += 1
            outcome.latencies.append(now - upload.arrived)
            finished_at = max(finished_at, now)
    outcome.drain_seconds = finished_at
    return outcome


def cmd_burst(args: Any, out: Any, cache_dir: Any) -> int:
    """``thumbs burst``: the three policies side by side for one burst, with what the retries cost."""
    from rich.table import Table

    from pipeline.app import project_config

    from .cost import estimate, load_prices, stages
    from .template import get_att_logical_id, load_template, resources_of_type, state_machine_definition

    if args.uploads < 1 or args.seconds <= 0 or args.concurrency < 1 or args.avg_mp <= 0:
        raise ValueError("--uploads, --seconds, --concurrency and --avg-mp must be positive")
    template = load_template(cache_dir)
    definition = state_machine_definition(template, lambda ref: get_att_logical_id(ref))
    tasks = stage_tasks(definition)
    functions = resources_of_type(template, "AWS::Lambda::Function")
    reserved: dict[str, int | None] = {}
    for stage, task in tasks.items():
        props = functions[task["Resource"] if task["Resource"] in functions else task["Parameters"]["FunctionName"]]
        value = props["Properties"].get("ReservedConcurrentExecutions")
        reserved[stage] = None if value is None else int(value)
    config = project_config()
    durations = {s.name.capitalize(): float(s.billed_ms) for s in stages(config, args.avg_mp)}
    common: dict[str, Any] = {
        "durations_ms": durations,
        "reserved": reserved,
        "uploads": args.uploads,
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "sizes": len(config.imaging.sizes),
        "map_concurrency": config.map_max_concurrency,
        "seed": args.seed,
    }
    deployed = {stage: throttle_retrier(task) for stage, task in tasks.items()}
    without = {stage: throttle_retrier(task, own=False) for stage, task in tasks.items()}
    runs = [
        ("deployed: throttle retrier", deployed, False),
        ("throttles on the transient retrier", without, False),
        ("bound of a perfect buffer", deployed, True),
    ]
    prices = load_prices(args.prices)
    base = sum(estimate(config, definition, prices, args.uploads, args.avg_mp, 0.0)["standard"].values())
    transition = prices["step_functions_standard_per_1000_transitions"] / 1000
    reserved_text = ", ".join(f"{s} {r}" for s, r in reserved.items() if r is not None) or "none"
    out.print(
        f"{args.uploads:,} uploads over {args.seconds:g} s, account concurrency {args.concurrency:,} "
        f"(reserved: {reserved_text}); {args.avg_mp:g} MP; invocations "
        + ", ".join(f"{s} {d:.0f} ms" for s, d in durations.items())
        + f" (+{COLD_START_MS:.0f} ms per new environment)"
    )
    out.print(
        "Throttle retrier per task: " + "; ".join(f"{s}: {r.describe() if r else 'none'}" for s, r in deployed.items())
    )
    table = Table()
    for column in ("policy", "FAILED", "drained (s)", "p50 (s)", "p99 (s)", "throttles", "peak", "cost (USD)"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for label, retriers, queued in runs:
        result = simulate(policy=label, retriers=retriers, queue=queued, **common)
        cost = base + result.throttles * transition  # each retry is a state transition; a throttle is not billed
        table.add_row(
            label,
            f"{result.failed:,}",
            f"{result.drain_seconds:,.0f}",
            f"{result.percentile(50):,.1f}",
            f"{result.percentile(99):,.1f}",
            f"{result.throttles:,}",
            f"{result.peak_concurrency:,}",
            f"{cost:,.2f}",
        )
    out.print(table)
    out.print(
        f"cost: the uploads' own ({base:,.2f} on Standard, thumbs cost) plus one state transition per "
        "throttled attempt; Lambda does not bill a throttled Invoke."
    )
    return 0
