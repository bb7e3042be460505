"""``thumbs latency``: how long one upload takes on AWS, from PutObject to its record, on paper.

Nothing here can reach AWS, so this is an estimate built in the open: each hop carries its
figure and where the figure comes from, and ``docs/latency.md`` says which metric on a
deployment replaces each one. Three kinds of source:

* **published**: AWS documents a figure or a bound;
* **measured**: this project measured it (the stage times are ``thumbs cost``'s, whose CPU
  part is the imaging core measured on the benchmark inputs);
* **assumed**: AWS publishes no number. The figure is a round budget, and its row names the
  metric that measures it on a deployment.

The path is walked from the synthesized definition, as ``thumbs cost`` counts transitions: the
states an upload enters one after another, with the Map's Resize counted once per wave
(``MaxConcurrency`` at a time). A cold path pays one Lambda init per function on it: the Map's
first wave starts its Resize environments side by side, so the wave pays one init, not three.

The p99 column adds each hop's p99. That is an upper bound (tails rarely line up), kept
because it is the figure to plan timeouts and alarms with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pipeline.config import PipelineConfig

from .cost import following, stages, states_entered

# (p50 ms, p99 ms, source). The sources are spelled out in docs/latency.md, with links.
S3_TO_EXECUTION = (
    1000.0,
    5000.0,
    "published bound, our reading: S3 event notifications are 'typically delivered in seconds but can "
    "sometimes take a minute or longer'",
)
TRANSITION = (25.0, 100.0, "assumed: Step Functions publishes no per-transition latency")
INVOKE = (10.0, 50.0, "assumed: a warm synchronous Lambda invoke from Step Functions")
RUNTIME_INIT = (100.0, 250.0, "assumed: Lambda starts the Python runtime before our import")
HANDLER_IMPORT = (
    55.0,
    110.0,
    "measured: 39-61 ms per handler after the runtime's own imports, with the bundles' 3.14 bytecode "
    "(benchmarks/cold_start.py); p99 doubled",
)
FIRST_CLIENTS = (
    500.0,
    1000.0,
    "measured: boto3's import and the first clients, made by the first invocation: 469-582 ms per handler; p99 doubled",
)
STAGE_P99_FACTOR = 2.0  # assumed: S3's own guidance retries a small GET or PUT after 2 s, so its tail is long


@dataclass(frozen=True)
class Hop:
    name: str
    p50_ms: float
    p99_ms: float
    source: str
    cold_only: bool = False


def critical_path(definition: dict[str, Any], items: int) -> tuple[int, list[str]]:
    """(transitions one after another, Task states in order) for an upload with ``items`` sizes.

    A Map's processor runs ``MaxConcurrency`` items at a time (0 or absent: all at once), so
    its states are on the path once per wave. A Choice follows the upload's branch.
    """

    def waves(state: dict[str, Any], items: int) -> int:
        return math.ceil(items / (state.get("MaxConcurrency") or items))

    entered = states_entered(definition, items, following("Object Created"), waves)
    return len(entered), [name for name, kind in entered if kind == "Task"]


def hops(config: PipelineConfig, definition: dict[str, Any], avg_mp: float) -> list[Hop]:
    """The hops of one upload, in order, each with its p50 and p99 and its source."""
    transitions, tasks = critical_path(definition, len(config.imaging.sizes))
    stage_ms = {stage.name: stage.billed_ms for stage in stages(config, avg_mp)}
    found = [
        Hop("S3 -> EventBridge -> StartExecution", *S3_TO_EXECUTION),
        Hop(
            f"Step Functions: {transitions} transitions in sequence",
            transitions * TRANSITION[0],
            transitions * TRANSITION[1],
            TRANSITION[2],
        ),
        Hop(f"Lambda invoke overhead x {len(tasks)}", len(tasks) * INVOKE[0], len(tasks) * INVOKE[1], INVOKE[2]),
    ]
    for name in dict.fromkeys(tasks):  # in order of first appearance: Validate, Resize, Record
        runs = tasks.count(name)
        ms = runs * stage_ms[name.lower()]
        waves = f" ({runs} waves)" if runs > 1 else ""
        found.append(
            Hop(
                f"{name}{waves}",
                ms,
                ms * STAGE_P99_FACTOR,
                f"measured CPU + I/O budget: thumbs cost's stage at {avg_mp:g} MP; p99 x{STAGE_P99_FACTOR:g}",
            )
        )
    functions = len(dict.fromkeys(tasks))
    for label, (p50, p99, source) in (
        ("runtime start", RUNTIME_INIT),
        ("handler import", HANDLER_IMPORT),
        ("first SDK clients", FIRST_CLIENTS),
    ):
        found.append(Hop(f"cold: {label} x {functions}", functions * p50, functions * p99, source, cold_only=True))
    return found


def totals(found: list[Hop]) -> dict[str, float]:
    """Warm and cold, p50 and p99 (ms): a cold path adds the init hops."""
    warm = [h for h in found if not h.cold_only]
    return {
        "warm p50": sum(h.p50_ms for h in warm),
        "warm p99": sum(h.p99_ms for h in warm),
        "cold p50": sum(h.p50_ms for h in found),
        "cold p99": sum(h.p99_ms for h in found),
    }


def cmd_latency(args: Any, out: Any, cache_dir: Any) -> int:
    """``thumbs latency``: the definition from the template the local stack uses (synthesized once, cached)."""
    from rich.table import Table

    from pipeline.app import project_config

    from .template import load_template, state_machine_definition

    if args.avg_mp <= 0:
        raise ValueError("--avg-mp must be positive")
    definition = state_machine_definition(load_template(cache_dir), lambda ref: "arn")
    config = project_config()
    found = hops(config, definition, args.avg_mp)
    sizes = "/".join(map(str, config.imaging.sizes))
    out.print(
        f"One upload on AWS, on paper: {args.avg_mp:g} MP, sizes {sizes}, {config.architecture}; "
        "from PutObject to the record (docs/latency.md)"
    )
    table = Table()
    for column, justify in (("hop", "left"), ("p50 ms", "right"), ("p99 ms", "right"), ("source", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for hop in found:
        table.add_row(hop.name, f"{hop.p50_ms:,.0f}", f"{hop.p99_ms:,.0f}", hop.source)
    out.print(table)
    total = totals(found)
    out.print(
        f"warm: p50 {total['warm p50'] / 1000:.1f} s, p99 {total['warm p99'] / 1000:.1f} s; "
        f"cold: p50 {total['cold p50'] / 1000:.1f} s, p99 {total['cold p99'] / 1000:.1f} s "
        "(p99 adds each hop's p99: an upper bound)"
    )
    return 0
