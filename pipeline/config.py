"""The pipeline's one configuration object, read from ``cdk.json`` context (key ``thumbnails``).

The CDK app builds the stack from it and the local runtime reads the same object, so what
runs on a laptop and what ``cdk deploy`` creates cannot drift. Every value is checked here:
a bad one fails ``cdk synth`` with a message naming the key, before anything deploys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

from imaging import ConfigError, ImagingSettings

CONTEXT_KEY = "thumbnails"
ARCHITECTURES = ("arm64", "x86_64")
WORKFLOW_TYPES = ("STANDARD", "EXPRESS")
# CloudWatch Logs accepts only these retentions; the names are CDK's RetentionDays members.
LOG_RETENTION_NAMES = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS",
    1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS",
}  # fmt: skip


@dataclass(frozen=True)
class FunctionSizing:
    """Memory and timeout of one function; see docs/performance.md (Memory) for where they come from.

    ``reserved_concurrency`` caps the function and sets that much of the account's concurrency
    aside for it (docs/bursts.md): a burst of uploads then throttles inside the pipeline, where
    the throttle retrier absorbs it, instead of taking the whole account. Unset: the function
    shares the account's unreserved pool, which deploys in any account.
    """

    memory_mb: int
    timeout_seconds: int
    reserved_concurrency: int | None = None

    def __post_init__(self) -> None:
        if self.reserved_concurrency is not None and (
            not isinstance(self.reserved_concurrency, int)
            or isinstance(self.reserved_concurrency, bool)
            or self.reserved_concurrency < 1
        ):
            raise ConfigError(
                f"reserved_concurrency: {self.reserved_concurrency!r} is not a whole number of at least 1 "
                "(leave it out to share the account's pool; 0 would stop the function)"
            )
        if not isinstance(self.memory_mb, int) or not 128 <= self.memory_mb <= 10240:
            raise ConfigError(f"memory_mb: {self.memory_mb!r} is not from 128 to 10240 (Lambda's range)")
        if not isinstance(self.timeout_seconds, int) or not 1 <= self.timeout_seconds <= 900:
            raise ConfigError(f"timeout_seconds: {self.timeout_seconds!r} is not from 1 to 900 (Lambda's range)")


@dataclass(frozen=True)
class AlarmSettings:
    """When the alarms fire, and who hears: see pipeline/observability.py and the runbook in docs/operating.md."""

    email: str = ""
    failed_executions: int = 1
    lambda_throttles: int = 1
    event_age_seconds: int = 300

    def __post_init__(self) -> None:
        if not isinstance(self.email, str) or (
            self.email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", self.email)
        ):
            raise ConfigError(f"alarms.email: {self.email!r} is not an e-mail address (or empty for none)")
        for name in ("failed_executions", "lambda_throttles", "event_age_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"alarms.{name}: {value!r} is not a whole number of at least 1")


MAX_BATCH_SIZE = 100  # a planned image is an S3 event of about 900 bytes; 100 of them stay far below 256 KiB
INLINE_MAP_CEILING = 40  # an inline Map runs at most 40 iterations at once


@dataclass(frozen=True)
class BackfillSettings:
    """How hard the Backfill pushes; docs/backfill.md sizes these against the account's limits.

    At most ``max_concurrency`` batches run at once, and each runs up to 40 of its stale
    images at once (an inline Map's ceiling), so ``max_concurrency * min(batch_size, 40)``
    pipeline executions are in flight at most. Larger batches mean fewer child executions,
    which is most of what a backfill that finds nothing stale costs; a batch's plan (its
    pipeline inputs) must stay under Step Functions' 256 KiB payload, hence at most 100.
    """

    max_concurrency: int = 10
    batch_size: int = 50
    tolerated_failure_percentage: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.max_concurrency, int) or not 1 <= self.max_concurrency <= 10000:
            raise ConfigError(
                f"backfill.max_concurrency: {self.max_concurrency!r} is not from 1 to 10000 "
                "(Distributed Map's ceiling of child executions)"
            )
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ConfigError(
                f"backfill.batch_size: {self.batch_size!r} is not from 1 to {MAX_BATCH_SIZE} "
                "(a batch's plan must fit Step Functions' 256 KiB payload)"
            )
        if not isinstance(self.tolerated_failure_percentage, (int, float)) or not (
            0 <= self.tolerated_failure_percentage <= 100
        ):
            raise ConfigError(
                f"backfill.tolerated_failure_percentage: {self.tolerated_failure_percentage!r} is not from 0 to 100"
            )

    @property
    def images_at_once(self) -> int:
        """How many of a batch's images run at once: all of them, up to an inline Map's 40."""
        return min(self.batch_size, INLINE_MAP_CEILING)


@dataclass(frozen=True)
class PipelineConfig:
    imaging: ImagingSettings = field(default_factory=ImagingSettings)
    map_max_concurrency: int = 10
    key_prefix: str = ""
    key_suffixes: tuple[str, ...] = ()
    cache_control: str = "public, max-age=86400"
    architecture: str = "arm64"
    log_retention_days: int = 30
    workflow_type: str = "STANDARD"
    alarms: AlarmSettings = field(default_factory=AlarmSettings)
    backfill: BackfillSettings = field(default_factory=BackfillSettings)
    validate: FunctionSizing = field(default_factory=lambda: FunctionSizing(1536, 60))
    resize: FunctionSizing = field(default_factory=lambda: FunctionSizing(512, 30))
    record: FunctionSizing = field(default_factory=lambda: FunctionSizing(256, 15))
    plan: FunctionSizing = field(default_factory=lambda: FunctionSizing(256, 60))
    # A stack meant to be thrown away (the integ test's, a developer's): deleting it empties and
    # deletes its buckets, table and log groups. Off by default: a deleted stack keeps its data.
    disposable: bool = False
    # The X-Ray SDK in the functions, for a subsegment per AWS call: 250-550 ms more per cold import.
    trace_aws_calls: bool = False

    def __post_init__(self) -> None:
        for name in ("disposable", "trace_aws_calls"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: {getattr(self, name)!r} is not true or false")
        if not isinstance(self.map_max_concurrency, int) or not 0 <= self.map_max_concurrency <= 40:
            raise ConfigError(
                f"map_max_concurrency: {self.map_max_concurrency!r} is not from 0 (no limit) to 40 "
                "(inline Map's own ceiling)"
            )
        if not isinstance(self.key_prefix, str) or len(self.key_prefix.encode()) > 1024:
            raise ConfigError(f"key_prefix: {self.key_prefix!r} is not an S3 key prefix")
        if not all(isinstance(s, str) and s for s in self.key_suffixes):
            raise ConfigError(f"key_suffixes: {list(self.key_suffixes)!r} must be non-empty strings like '.jpg'")
        if not isinstance(self.cache_control, str) or not re.fullmatch(r"[\x20-\x7e]+", self.cache_control):
            raise ConfigError(f"cache_control: {self.cache_control!r} is not a printable HTTP header value")
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"architecture: {self.architecture!r} is not one of {', '.join(ARCHITECTURES)}")
        if self.log_retention_days not in LOG_RETENTION_NAMES:
            raise ConfigError(
                f"log_retention_days: {self.log_retention_days!r} is not a CloudWatch Logs retention "
                f"({', '.join(map(str, LOG_RETENTION_NAMES))})"
            )
        if self.workflow_type not in WORKFLOW_TYPES:
            raise ConfigError(f"workflow_type: {self.workflow_type!r} is not one of {', '.join(WORKFLOW_TYPES)}")

    @classmethod
    def from_context(cls, context: Any) -> PipelineConfig:
        """Parse the ``thumbnails`` context value; missing keys take the defaults above."""
        if context is None:
            return cls()
        if not isinstance(context, dict):
            raise ConfigError(f"context {CONTEXT_KEY!r} must be an object, got {type(context).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(context) - known)
        if unknown:
            raise ConfigError(
                f"unknown setting(s) in {CONTEXT_KEY!r}: {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values = dict(context)
        try:
            if "imaging" in values:
                values["imaging"] = ImagingSettings.from_mapping(_object(values["imaging"], "imaging"))
            if "alarms" in values:
                values["alarms"] = AlarmSettings(**_object(values["alarms"], "alarms"))
            if "backfill" in values:
                values["backfill"] = BackfillSettings(**_object(values["backfill"], "backfill"))
            for name in ("validate", "resize", "record", "plan"):
                if name in values:
                    default = getattr(cls(), name)
                    merged: dict[str, Any] = {
                        "memory_mb": default.memory_mb,
                        "timeout_seconds": default.timeout_seconds,
                    }
                    merged.update(_object(values[name], name))
                    values[name] = FunctionSizing(**merged)
            if "key_suffixes" in values:
                if not isinstance(values["key_suffixes"], list):
                    raise ConfigError(f"key_suffixes: {values['key_suffixes']!r} is not a list")
                values["key_suffixes"] = tuple(values["key_suffixes"])
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"{CONTEXT_KEY}: {exc}") from None
        except ConfigError as exc:
            raise ConfigError(f"{CONTEXT_KEY}: {exc}") from None


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: expected an object, got {value!r}")
    return value
