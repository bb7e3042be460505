"""``thumbs cost``: what a month of uploads costs, per component, Standard and Express side by side.

``thumbs cost --backfill N``: what one backfill of N stored objects costs, when every object
is stale (the first backfill, or one after a sizes change) and when none is (a second run).

Nothing here is a guess that could be counted instead:

* state transitions are counted by walking the synthesized definition (the same template
  ``cdk deploy`` uses) for the configured sizes; the test checks the count against the
  ``StateEntered`` events of a real local execution;
* Lambda time comes from the imaging core measured on this project's benchmark inputs
  (``MEASURED`` below, re-measure with ``benchmarks/``), scaled to each function's CPU share
  (Lambda gives a full vCPU at 1,769 MB) and the configured memory;
* S3 requests are the calls the handlers make; thumbnail bytes follow the measured size of
  our JPEG output per pixel.

Prices are ``prices.json`` (dated, us-east-1, no free tier); ``--prices FILE`` overrides keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awsio import STAGED_DAYS

from pipeline.config import PipelineConfig

PRICES = Path(__file__).with_name("prices.json")
FULL_VCPU_MB = 1769

# Measured on a 2-core x86 machine of the CI kind, one core, JPEG photos (docs/performance.md):
# validate = decode at the DCT scale for the largest size + the intermediate; resize = one
# size cut from the intermediate and encoded. I/O is S3 and DynamoDB latency inside a region.
MEASURED = {
    # io_ms of Validate and Record were budgeted when Validate HEADed the upload before its GET and
    # Record HEADed each key before its COPY: for a new upload they are one and three round trips high.
    "validate": {"cpu_ms_per_mp": 9.0, "cpu_ms": 5.0, "io_ms": 40.0, "io_ms_per_mp": 5.0},
    # three sizes of a JPEG photo: 17-27 ms since the intermediate is TIFF (42-44 ms when it was PNG)
    "resize": {"cpu_ms_per_mp": 0.0, "cpu_ms": 8.0, "io_ms": 30.0, "io_ms_per_mp": 0.0},
    "record": {"cpu_ms_per_mp": 0.0, "cpu_ms": 5.0, "io_ms": 75.0, "io_ms_per_mp": 0.0},
    # per batch: one BatchGetItem of batch_size keys and the plan; measured locally, I/O from DynamoDB's latency
    "plan": {"cpu_ms_per_mp": 0.0, "cpu_ms": 5.0, "io_ms": 25.0, "io_ms_per_mp": 0.0},
}
LIST_PAGE = 1000  # ListObjectsV2 returns at most 1,000 keys per request
RESULTS_PER_FILE = 5000  # child executions per ResultWriter file (SUCCEEDED_n.json)
THUMBNAIL_BYTES_PER_PIXEL, THUMBNAIL_BYTES_FIXED = 0.2, 1500  # measured: 4, 12, 149 KB at 128/256/1024
LAMBDA_LOG_BYTES = 1500  # START/END/REPORT, one Powertools line and one EMF blob per invocation
EXPRESS_LOG_BYTES_PER_EVENT = 1200  # ALL-level logs with execution data: one line per history event
EXPRESS_MEMORY_GB = 0.0625  # Express bills memory in 64 MB steps; this workflow's state is small
RECORD_WRITE_UNITS = 2  # an item with three thumbnails is 1-2 KB: up to 2 write units


def load_prices(override: str | None = None) -> dict[str, Any]:
    prices = json.loads(PRICES.read_text())
    if override:
        extra = json.loads(Path(override).read_text())
        unknown = sorted(set(extra) - set(prices))
        if unknown:
            raise ValueError(f"--prices: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(prices))}")
        prices.update(extra)
    return prices


def count_transitions(definition: dict[str, Any], items: int, detail_type: str = "Object Created") -> int:
    """States entered by one successful run of ``detail_type`` with ``items`` Map items."""
    return len(states_entered(definition, items, following(detail_type)))


def following(detail_type: str) -> Callable[[dict[str, Any]], str | None]:
    """How an event of ``detail_type`` goes through a Choice on it: its branch, else the default."""

    def choose(state: dict[str, Any]) -> str | None:
        return next((c["Next"] for c in state["Choices"] if c.get("StringEquals") == detail_type), state.get("Default"))

    return choose


def states_entered(
    machine: dict[str, Any],
    items: int,
    choose: Callable[[dict[str, Any]], str | None],
    runs: Callable[[dict[str, Any], int], int] = lambda state, items: items,
) -> list[tuple[str, str]]:
    """(name, type) of each state entered from ``StartAt`` on, in order.

    A Map's processor is entered ``runs(map_state, items)`` times (every item, by default);
    ``choose`` follows a Choice.
    """
    entered: list[tuple[str, str]] = []
    name = machine["StartAt"]
    while name:
        state = machine["States"][name]
        kind = state["Type"]
        entered.append((name, kind))
        if kind == "Choice":
            name = choose(state)
            continue
        if kind == "Map":
            processor = state.get("ItemProcessor") or state["Iterator"]
            entered += runs(state, items) * states_entered(processor, items, choose, runs)
        if kind in ("Succeed", "Fail") or state.get("End"):
            break
        name = state.get("Next")
    return entered


@dataclass(frozen=True)
class Stage:
    name: str
    invocations: float
    memory_mb: int
    billed_ms: float

    @property
    def gb_seconds(self) -> float:
        return self.invocations * self.memory_mb / 1024 * self.billed_ms / 1000


def stages(config: PipelineConfig, avg_mp: float) -> list[Stage]:
    sizes = len(config.imaging.sizes)
    found = []
    for name, count in (("validate", 1), ("resize", sizes), ("record", 1)):
        sizing = getattr(config, name)
        m = MEASURED[name]
        cpu = (m["cpu_ms"] + m["cpu_ms_per_mp"] * avg_mp) * max(1.0, FULL_VCPU_MB / sizing.memory_mb)
        io = m["io_ms"] + m["io_ms_per_mp"] * avg_mp
        found.append(Stage(name, count, sizing.memory_mb, math.ceil(cpu + io)))
    return found


def estimate(
    config: PipelineConfig,
    definition: dict[str, Any],
    prices: dict[str, Any],
    images: int,
    avg_mp: float,
    retries: float,
) -> dict[str, Any]:
    """Monthly cost per component for ``images`` uploads; Standard and Express differ only in Step Functions."""
    sizes = config.imaging.sizes
    transitions = count_transitions(definition, len(sizes)) + retries
    runs = stages(config, avg_mp)
    invocations = sum(s.invocations for s in runs) + retries
    gb_seconds = sum(s.gb_seconds for s in runs)
    # per image: GET of the source and PUT of the intermediate; per size: GET of the intermediate,
    # PUT of the staged thumbnail, and Record's COPY (priced as a PUT). A new upload's keys are
    # in no record, so Record copies them If-None-Match without a HEAD; a rerun adds a HEAD a size.
    puts, gets = 1 + 2 * len(sizes), 1 + len(sizes)
    aspect, gib = 0.75, 1024**3
    thumbnail_gib = sum(THUMBNAIL_BYTES_PER_PIXEL * n * n * aspect + THUMBNAIL_BYTES_FIXED for n in sizes) / gib
    intermediate_gib = max(sizes) ** 2 * aspect * 3 / gib  # uncompressed, kept one day of thirty
    storage = prices["s3_storage_per_gb_month"]
    logs = prices["cloudwatch_logs_ingest_per_gb"]
    common = {
        "Lambda compute": gb_seconds * prices[f"lambda_{config.architecture}_per_gb_second"],
        "Lambda requests": invocations * prices["lambda_per_million_requests"] / 1e6,
        "S3 requests": (puts * prices["s3_put_per_1000"] + gets * prices["s3_get_per_1000"]) / 1000,
        "S3 thumbnail storage (month 1)": thumbnail_gib * storage,
        "S3 intermediates (1-day lifecycle)": intermediate_gib / 30 * storage,
        "S3 staged thumbnails (15-day lifecycle)": thumbnail_gib * STAGED_DAYS / 30 * storage,
        "DynamoDB writes": RECORD_WRITE_UNITS * prices["dynamodb_per_million_write_units"] / 1e6,
        # Record reads the previous record first (a consistent read of one item), to remove dropped sizes
        "DynamoDB reads": prices["dynamodb_per_million_read_units"] / 1e6,
        "EventBridge (S3 events are free)": prices["eventbridge_aws_service_events_per_million"] / 1e6,
        "CloudWatch Logs (Lambda)": invocations * LAMBDA_LOG_BYTES / gib * logs,
        "X-Ray traces": prices["xray_per_million_traces"] / 1e6,
    }
    batches = math.ceil(len(sizes) / (config.map_max_concurrency or len(sizes)))
    wall_seconds = (runs[0].billed_ms + batches * runs[1].billed_ms + runs[2].billed_ms) / 1000
    history_events = transitions * 2 + len(sizes) * 3 + 6  # entered/exited, task scheduled/started/succeeded
    standard = {
        "Step Functions state transitions": transitions * prices["step_functions_standard_per_1000_transitions"] / 1000
    }
    express = {
        "Step Functions requests": prices["step_functions_express_per_million_requests"] / 1e6,
        "Step Functions duration": wall_seconds * EXPRESS_MEMORY_GB * prices["step_functions_express_per_gb_second"],
        "CloudWatch Logs (Express history)": history_events * EXPRESS_LOG_BYTES_PER_EVENT / gib * logs,
    }
    return {
        "images": images,
        "avg_mp": avg_mp,
        "transitions_per_image": transitions,
        "stages": runs,
        "standard": {name: images * per_image for name, per_image in {**standard, **common}.items()},
        "express": {name: images * per_image for name, per_image in {**express, **common}.items()},
        "wall_seconds": wall_seconds,
    }


def batch_transitions(processor: dict[str, Any], stale: int) -> int:
    """States entered by one Backfill batch (a Standard child execution) with ``stale`` images, none failing.

    Walks the item processor of the Backfill's Distributed Map: a Choice on ``IsPresent`` is
    taken when the batch has images, a Choice on a failure flag is not (nothing failed).
    """

    def choose(state: dict[str, Any]) -> str | None:
        first = state["Choices"][0]
        return first["Next"] if first.get("IsPresent") is True and stale > 0 else state.get("Default")

    return len(states_entered(processor, stale, choose))


def backfill_estimate(
    config: PipelineConfig,
    pipeline: dict[str, Any],
    backfill: dict[str, Any],
    prices: dict[str, Any],
    objects: int,
    avg_mp: float,
) -> dict[str, dict[str, float]]:
    """One backfill of ``objects`` stored objects: all stale (every image through the pipeline) and none stale.

    The Map Run lists the bucket (a LIST per 1,000 keys) and runs one Standard child execution
    per batch; each child plans its batch (one Lambda call, one strongly consistent read per
    object) and starts a pipeline execution per stale image, priced as ``thumbs cost --images``.
    A Distributed Map's child execution is counted as one transition to start, plus its states.
    """
    settings = config.backfill
    batches = math.ceil(objects / settings.batch_size)
    top = backfill["States"]
    outer = sum(1 for state in top.values() if state["Type"] != "Map") + 1  # Defaults, Options and the Map itself
    (processor,) = [s["ItemProcessor"] for s in top.values() if s["Type"] == "Map"]
    plan = Stage("plan", 1, config.plan.memory_mb, _plan_ms(config))
    transition = prices["step_functions_standard_per_1000_transitions"] / 1000
    lambda_price = prices[f"lambda_{config.architecture}_per_gb_second"]
    logs = prices["cloudwatch_logs_ingest_per_gb"]
    results_files = 2 * math.ceil(batches / RESULTS_PER_FILE) + 1
    shared = {
        "Backfill: S3 LIST (ItemReader)": math.ceil(objects / LIST_PAGE) * prices["s3_list_per_1000"] / 1000,
        "Backfill: Plan Lambda compute": batches * plan.gb_seconds * lambda_price,
        "Backfill: Plan Lambda requests": batches * prices["lambda_per_million_requests"] / 1e6,
        "Backfill: DynamoDB reads (records)": objects * prices["dynamodb_per_million_read_units"] / 1e6,
        "Backfill: CloudWatch Logs (Plan)": batches * LAMBDA_LOG_BYTES / 1024**3 * logs,
        "Backfill: S3 PUT (result files)": results_files * prices["s3_put_per_1000"] / 1000,
    }
    scenarios: dict[str, dict[str, float]] = {}
    for scenario, stale in (("all stale", objects), ("none stale", 0)):
        full, rest = divmod(stale, settings.batch_size)
        child_transitions = full * batch_transitions(processor, settings.batch_size)
        if rest:
            child_transitions += batch_transitions(processor, rest)
        child_transitions += (batches - full - (1 if rest else 0)) * batch_transitions(processor, 0)
        map_run = outer + batches + child_transitions  # + one per child execution started
        costs = {"Backfill: Map Run and batch transitions": map_run * transition, **shared}
        if stale:
            per_image = estimate(config, pipeline, prices, stale, avg_mp, 0.0)["standard"]
            costs.update({f"Pipeline: {name}": value for name, value in per_image.items()})
        scenarios[scenario] = costs
    return scenarios


def _plan_ms(config: PipelineConfig) -> float:
    m = MEASURED["plan"]
    return math.ceil(m["cpu_ms"] * max(1.0, FULL_VCPU_MB / config.plan.memory_mb) + m["io_ms"])


EXPRESS_LOSES = (
    "no execution history in the console: the ALL-level CloudWatch Logs are the only record of a run",
    "no RedriveExecution: a failed run is recorded FAILED and replayed as a new execution",
    "no status-change events: failures are recorded by a catch-all inside the workflow",
    "at most 5 minutes per execution, and at-least-once execution semantics",
)


def cmd_cost(args: Any, out: Any, cache_dir: Path) -> int:
    """``thumbs cost``: the definition from the template the local stack uses (synthesized once, cached)."""
    from rich.table import Table

    from pipeline.app import project_config

    from .template import load_template, state_machine_definition

    if (args.images or 0) < 0 or (args.backfill or 0) < 0 or args.avg_mp <= 0 or args.retries < 0:
        raise ValueError("--images, --backfill, --avg-mp and --retries must be positive")
    prices = load_prices(args.prices)
    template = load_template(cache_dir)
    definition = state_machine_definition(template, lambda ref: "arn")
    config = project_config()
    if args.backfill is not None:
        backfill = state_machine_definition(template, lambda ref: "arn", output="BackfillStateMachineArn")
        return _print_backfill(config, definition, backfill, prices, args, out)
    result = estimate(config, definition, prices, args.images, args.avg_mp, args.retries)
    sizes = "/".join(map(str, config.imaging.sizes))
    out.print(
        f"{args.images:,} images a month, {args.avg_mp:g} MP average, sizes {sizes}, {config.workflow_type} deployed; "
        f"{result['transitions_per_image']:g} transitions per image; prices {prices['region']} as of {prices['as_of']}"
    )
    table = Table()
    table.add_column("component")
    table.add_column("Standard (USD)", justify="right")
    table.add_column("Express (USD)", justify="right")
    components = list(dict.fromkeys([*result["standard"], *result["express"]]))
    for component in components:
        cells = [result[kind].get(component) for kind in ("standard", "express")]
        table.add_row(component, *("-" if c is None else f"{c:,.2f}" for c in cells))
    totals = [sum(result[kind].values()) for kind in ("standard", "express")]
    table.add_row("[bold]total[/bold]", *(f"[bold]{t:,.2f}[/bold]" for t in totals))
    out.print(table)
    for stage in result["stages"]:
        out.print(
            f"  {stage.name}: {stage.invocations:g} x {stage.billed_ms:.0f} ms at {stage.memory_mb} MB "
            f"= {stage.gb_seconds:.3f} GB-s per image"
        )
    out.print("Express would lose: " + "; ".join(EXPRESS_LOSES) + ".")
    return 0


def _print_backfill(
    config: PipelineConfig,
    pipeline: dict[str, Any],
    backfill: dict[str, Any],
    prices: dict[str, Any],
    args: Any,
    out: Any,
) -> int:
    from rich.table import Table

    scenarios = backfill_estimate(config, pipeline, backfill, prices, args.backfill, args.avg_mp)
    settings = config.backfill
    out.print(
        f"Backfill of {args.backfill:,} stored objects, {args.avg_mp:g} MP average, batches of {settings.batch_size}, "
        f"{settings.max_concurrency} batches at once; prices {prices['region']} as of {prices['as_of']}"
    )
    table = Table()
    table.add_column("component")
    for scenario in scenarios:
        table.add_column(f"{scenario} (USD)", justify="right")
    for component in dict.fromkeys(c for costs in scenarios.values() for c in costs):
        cells = [costs.get(component) for costs in scenarios.values()]
        table.add_row(component, *("-" if c is None else f"{c:,.2f}" for c in cells))
    totals = [sum(costs.values()) for costs in scenarios.values()]
    table.add_row("[bold]total[/bold]", *(f"[bold]{t:,.2f}[/bold]" for t in totals))
    out.print(table)
    out.print(
        "All stale: the first backfill of a bucket, or one after a change of sizes, formats or qualities. "
        "None stale: a second backfill, which only lists, plans and skips."
    )
    return 0
