"""``thumbs``: run the synthesized pipeline on this machine, inspect its executions, replay failures.

    thumbs run [PATH ...] [--out DIR] [--fault FUNCTION=KIND[:N]] [--concurrency N]
    thumbs executions [--status S]
    thumbs history EXECUTION
    thumbs replay EXECUTION ... | --failed [--since 24h]
    thumbs backfill [--prefix P] [--all]
    thumbs serve [--port P]
    thumbs console [--port P]
    thumbs cost --images N [--avg-mp M] | --backfill N
    thumbs latency [--avg-mp M]              (one upload on AWS, on paper)
    thumbs burst [--uploads N] [--seconds S] [--concurrency C]
    thumbs verify [--timeout S]              (with --stack: after a deploy)
    thumbs engine [--stop]                   (the warm engine local commands fork from)

Every command that runs the pipeline deploys the same CloudFormation template ``cdk deploy``
would, on moto, with the handler code run by the local Lambda runtime (``thumbs/local/``).
With ``--stack NAME`` (and ``--profile``/``--region`` or the usual AWS environment),
``executions``, ``history``, ``replay``, ``backfill`` and ``drain-dlq`` work on a deployed stack instead
(``thumbs/aws.py``).

This module only parses arguments and hands over: each engine is imported when a command
needs it, so ``thumbs cost``, ``latency`` and ``burst`` never load moto and ``--stack`` never starts a local stack.
"""

from __future__ import annotations

import argparse
import sys

# With --stack these work on a deployed stack; the rest run locally (cost, latency and burst: anywhere).
STACK_COMMANDS = ("executions", "history", "replay", "backfill", "drain-dlq", "verify")
# Local commands that start a stack run in a fork of the warm engine (thumbs/local/engine.py): their
# start is mostly imports. serve and console run for hours; executions and history only read files.
ENGINE_COMMANDS = ("run", "replay", "backfill", "verify")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thumbs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", help="local state folder (default: $THUMBS_STATE or .thumbs)")
    parser.add_argument("--stack", help="work on this deployed CloudFormation stack instead of the local one")
    parser.add_argument("--profile", help="AWS profile for --stack (default: the environment's credentials)")
    parser.add_argument("--region", help="AWS region for --stack (default: the profile's or AWS_REGION)")
    commands = parser.add_subparsers(dest="command", required=True)
    fault_help = (
        "inject a fault: FUNCTION=KIND[:COUNT][@SKIP], KIND one of transient, throttle, timeout, oom; "
        "SKIP invocations pass first (repeatable)"
    )
    concurrency_help = (
        "the account's Lambda concurrency limit, as on AWS: an invocation past it (or past a function's "
        "ReservedConcurrentExecutions) is throttled, and the throttle retrier takes over (default: no limit)"
    )

    run = commands.add_parser("run", help="upload images and run the pipeline on them")
    run.add_argument("paths", nargs="*", help="files or folders (default: generated samples)")
    run.add_argument("--out", default="thumbs-out", help="where thumbnails and records.jsonl go (default: thumbs-out)")
    run.add_argument("--fault", action="append", default=[], help=fault_help)
    run.add_argument("--concurrency", type=int, metavar="N", help=concurrency_help)

    executions = commands.add_parser("executions", help="list executions, newest last")
    executions.add_argument("--status", choices=["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"])
    executions.add_argument("--since", help="with --stack: only executions started within, e.g. 24h")
    executions.add_argument("--limit", type=int, default=50, help="with --stack: rows to show (default 50)")

    history = commands.add_parser("history", help="one execution's events, with durations, retries and errors")
    history.add_argument("execution", help="execution ARN, name, or a unique prefix of the name")

    replay = commands.add_parser("replay", help="run executions' input again through the pipeline")
    replay.add_argument("executions", nargs="*")
    replay.add_argument("--failed", action="store_true", help="replay every FAILED (TIMED_OUT, ABORTED) execution")
    replay.add_argument("--since", help="with --failed: only executions started within, e.g. 24h")
    replay.add_argument("--rate", type=float, default=5.0, help="with --stack: replays per second (default 5)")
    replay.add_argument("--fault", action="append", default=[], help=fault_help)

    backfill = commands.add_parser(
        "backfill", help="thumbnails for objects already in the upload bucket, or remade after a settings change"
    )
    backfill.add_argument("--prefix", default="", help="only keys under this prefix (default: the whole bucket)")
    backfill.add_argument(
        "--all", action="store_true", help="remake up-to-date thumbnails too (default: only what is stale)"
    )
    backfill.add_argument("--fault", action="append", default=[], help=fault_help)

    serve = commands.add_parser("serve", help="keep the local stack up for the AWS CLI and boto3")
    serve.add_argument("--port", type=int, default=4566)
    serve.add_argument("--fault", action="append", default=[], help=fault_help)
    serve.add_argument("--concurrency", type=int, metavar="N", help=concurrency_help)
    serve.add_argument(
        "--watch",
        action="store_true",
        help="apply edits while it runs: a changed handler or imaging file restarts its functions' workers; "
        "a changed CDK app (pipeline/, cdk.json) updates the state machines and function settings",
    )

    console_command = commands.add_parser("console", help="serve the local stack and open its web console")
    console_command.add_argument("--port", type=int, default=4566)
    console_command.add_argument("--fault", action="append", default=[], help=fault_help)
    console_command.add_argument("--concurrency", type=int, metavar="N", help=concurrency_help)
    console_command.set_defaults(open_browser=True)

    engine = commands.add_parser(
        "engine", help="the warm engine that local commands fork from: list it, or --stop it (THUMBS_ENGINE=0: none)"
    )
    engine.add_argument("--stop", action="store_true", help="stop this user's engines once their commands finish")

    drain = commands.add_parser("drain-dlq", help="with --stack: start what dead-lettered events should have started")
    drain.add_argument("--limit", type=int, help="at most this many messages")
    drain.add_argument("--dry-run", action="store_true", help="only read the queue and say what would happen")

    verify = commands.add_parser(
        "verify", help="check end to end that the stack works: uploads, rejections, thumbnails, histories, deletions"
    )
    verify.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the outcomes, and again for the deletions"
    )

    cost = commands.add_parser("cost", help="monthly cost per component, Standard and Express side by side")
    volume = cost.add_mutually_exclusive_group(required=True)
    volume.add_argument("--images", type=int, help="images uploaded per month")
    volume.add_argument("--backfill", type=int, metavar="N", help="the cost of backfilling N objects already stored")
    cost.add_argument("--avg-mp", type=float, default=12.0, help="average megapixels per image (default 12)")
    cost.add_argument("--retries", type=float, default=0.0, help="average retried tasks per image (default 0)")
    cost.add_argument("--prices", help="a JSON file overriding prices (see thumbs/prices.json)")

    latency = commands.add_parser(
        "latency", help="one upload's time on AWS, hop by hop, p50 and p99, warm and cold, on paper"
    )
    latency.add_argument("--avg-mp", type=float, default=12.0, help="megapixels of the upload (default 12)")

    burst = commands.add_parser(
        "burst", help="simulate a burst of uploads on AWS against Lambda's concurrency: what fails, how long it drains"
    )
    burst.add_argument("--uploads", type=int, default=50_000, help="uploads in the burst (default 50,000)")
    burst.add_argument("--seconds", type=float, default=60.0, help="over how many seconds they arrive (default 60)")
    burst.add_argument(
        "--concurrency", type=int, default=1000, help="the account's Lambda concurrency (default 1,000, AWS's default)"
    )
    burst.add_argument("--avg-mp", type=float, default=12.0, help="average megapixels per image (default 12)")
    burst.add_argument("--seed", type=int, default=1, help="the jitter's random seed (default 1)")
    burst.add_argument("--prices", help="a JSON file overriding prices (see thumbs/prices.json)")
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, with every check that needs no work done first; a bad one exits 2 with usage."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "replay" and not (args.failed or args.executions):
        parser.error("replay needs EXECUTION names or --failed")
    if getattr(args, "fault", []):  # the runtime is imported only when there is something to check
        from .local.lambda_runtime import FaultSwitch

        try:
            FaultSwitch.parse(args.fault)
        except ValueError as exc:
            parser.error(str(exc))
    if args.command != "burst" and (getattr(args, "concurrency", None) or 1) < 1:
        parser.error("--concurrency must be at least 1")
    if args.command == "drain-dlq" and not args.stack:
        parser.error("drain-dlq needs --stack: the local stack delivers events without a queue")
    if args.stack and args.command not in (*STACK_COMMANDS, "cost", "latency", "burst"):
        parser.error(f"{args.command} runs locally; --stack works with {', '.join(STACK_COMMANDS)}")
    return args


def entry() -> int:
    """The ``thumbs`` command: a command that starts a local stack runs in a fork of the warm engine.

    ``main`` is the command itself; the tests call it directly, in their own process.
    """
    argv = sys.argv[1:]
    args = parse(argv)
    if args.command in ENGINE_COMMANDS and not args.stack:
        from .local import engine

        if engine.enabled():
            status = engine.run_in_engine(argv)
            if status is not None:
                return status
    return main(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse, then hand over to the engine the command needs; AWS and lookup errors end in one line."""
    from botocore.exceptions import BotoCoreError, ClientError

    from .local.state import StateFolder, state_root
    from .terminal import console, out  # not at the top: a command the engine runs never needs rich here

    args = parse(argv)
    try:
        if args.command == "cost":
            from .cost import cmd_cost

            return cmd_cost(args, out, StateFolder(state_root(args.state)).cache_dir)
        if args.command == "latency":
            from .latency import cmd_latency

            return cmd_latency(args, out, StateFolder(state_root(args.state)).cache_dir)
        if args.command == "engine":
            from .local.engine import cmd_engine

            return cmd_engine(args, out)
        if args.command == "burst":
            from .burst import cmd_burst

            return cmd_burst(args, out, StateFolder(state_root(args.state)).cache_dir)
        if args.stack:
            from . import aws, verify

            on_aws = {
                "executions": aws.cmd_executions,
                "history": aws.cmd_history,
                "replay": aws.cmd_replay,
                "backfill": aws.cmd_backfill,
                "drain-dlq": aws.cmd_drain_dlq,
                "verify": lambda args: verify.cmd_verify(args, out),
            }
            return on_aws[args.command](args)
        from .local import commands

        local = {
            "run": commands.cmd_run,
            "executions": commands.cmd_executions,
            "history": commands.cmd_history,
            "replay": commands.cmd_replay,
            "backfill": commands.cmd_backfill,
            "verify": commands.cmd_verify,
            "serve": commands.cmd_serve,
            "console": commands.cmd_serve,  # the same, and it opens the browser
        }
        return local[args.command](args, StateFolder(state_root(args.state)))
    except ValueError as exc:
        console.print(f"thumbs: {exc}")
        return 2
    except (BotoCoreError, ClientError) as exc:  # no credentials, access denied: say so, no traceback
        console.print(f"thumbs: AWS said: {exc}")
        return 2
    except LookupError as exc:
        console.print(f"thumbs: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
