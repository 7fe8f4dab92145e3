"""Command line: `run`, `demo`, `simulate`, `check`; `bench` and `chaos` run the tools in `exporter.tools`.

Every command exits 2 with one line on a bad setting, and stops cleanly on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from exporter import __version__, logs
from exporter.config import DEFAULT_PORT, ConfigError, ListenAddress, Settings, load_settings, parse_listen
from exporter.process import freeze_heap_when_ready, tune_process
from exporter.simulator.faults import Fault, parse_fault

if TYPE_CHECKING:
    from exporter.app import Exporter
    from exporter.simulator.api import SimulatedOrg

log = structlog.get_logger(__name__)

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genesys-exporter", description="Prometheus exporter for Genesys Cloud CX.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser, *, config: bool = True) -> None:
        if config:
            sub.add_argument(
                "--config",
                type=Path,
                help="YAML file of settings (lower-case names, e.g. queue_interval: 10s)",
            )
        sub.add_argument(
            "--log-format",
            choices=("json", "console", "auto"),
            help="default: console on a terminal, else json",
        )
        sub.add_argument("--log-level", choices=("debug", "info", "warning", "error"))

    run = commands.add_parser("run", help="export a real Genesys Cloud org (settings from env, .env, --config)")
    common(run)
    run.add_argument("--listen", help=f"HOST:PORT to serve /metrics on (default 0.0.0.0:{DEFAULT_PORT})")
    run.add_argument("--web.config.file", dest="web_config_file", type=Path, help="TLS and basic auth config")

    check = commands.add_parser("check", help="log in, call each endpoint once, report missing permissions")
    common(check)

    demo = commands.add_parser("demo", help="the exporter against a simulated org, in one process")
    common(demo, config=False)
    demo.add_argument("--listen", default=f"127.0.0.1:{DEFAULT_PORT}", help="HOST:PORT for the exporter")
    _simulation_args(demo)

    simulate = commands.add_parser("simulate", help="serve only the simulated Genesys Cloud API")
    common(simulate, config=False)
    simulate.add_argument("--listen", default="127.0.0.1:8089", help="HOST:PORT for the simulated API")
    _simulation_args(simulate)
    chaos = commands.add_parser("chaos", help="every fault of the simulated org, and what held (a table)")
    chaos.add_argument("--duration", type=float, default=40.0, help="seconds each fault lasts (fake clock)")
    chaos.add_argument("--only", default="", help="run only the faults whose name holds this text, e.g. push")
    bench = commands.add_parser("bench", help="print cost and speed figures against a simulated org")
    bench.add_argument(
        "mode",
        choices=("scale", "chain", "encodings", "cycle-cost", "scrape-load", "soak", "long-soak"),
        help="scale: freshness, budget and cost against a simulated org in its own process (make bench); "
        "chain: the org, the exporter and the real Prometheus with the shipped config and dashboards "
        "(make bench-chain); encodings: what each encoding of agent status costs a real Prometheus; "
        "cycle-cost: API requests per poller cycle; scrape-load: concurrent scrapers; soak: memory over cycles; "
        "long-soak: memory of a large exporter over a long wall-clock run (a new day, renewals and sweeps in it)",
    )
    bench.add_argument(
        "--minutes", type=float, default=4.0, help="scale: minutes measured after the warm-up; long-soak: its length"
    )
    bench.add_argument("--naive-seconds", type=float, default=60.0, help="scale: how long the naive design runs")
    bench.add_argument("--cycles", type=int, default=5000, help="soak: queue cycles to run")
    bench.add_argument("--changes", type=float, default=250.0, help="encodings: state changes a second in the org")
    bench.add_argument(
        "--agent-metrics", default=None, help="chain: GENESYS_AGENT_METRICS of the exporter (default: its default)"
    )
    bench.add_argument(
        "--prometheus-gogc",
        type=int,
        default=None,
        help="chain: GOGC of Prometheus (default: the shipped compose's Prometheus release's, 50)",
    )
    bench.add_argument("--scrapers", type=int, default=50, help="scrape-load: concurrent scrapers")
    bench.add_argument("--seconds", type=float, default=60.0, help="scrape-load: how long")
    bench.add_argument("--sizes", default="2000x50000,40x1000", help="QUEUESxAGENTS,... to measure")
    bench.add_argument(
        "--scope",
        choices=("members", "users"),
        default=None,
        help="agent scope (scale and cycle-cost: the exporter's default, members, unless told)",
    )
    bench.add_argument(
        "--clients",
        type=_client_count,
        default=1,
        help="scale, long-soak: OAuth clients of the simulated org the exporter uses (default 1)",
    )
    return parser


def _simulation_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--queues", type=int, default=20, help="queues in the simulated org")
    sub.add_argument("--agents", type=int, default=200, help="agents in the simulated org")
    sub.add_argument("--seed", type=int, default=1, help="random seed: same seed, same org")
    sub.add_argument("--rate-limit", type=int, default=300, help="requests per minute per OAuth client")
    sub.add_argument(
        "--clients",
        type=_client_count,
        default=1,
        help="OAuth clients of the simulated org, each with its own rate window and channels (default 1)",
    )
    sub.add_argument("--heartbeat", type=float, default=30.0, help="seconds between notification socket heartbeats")
    sub.add_argument(
        "--analytics-delay",
        type=float,
        default=5.0,
        help="seconds before a conversation's metrics reach the aggregates (the real delay is Unconfirmed)",
    )
    sub.add_argument(
        "--channel-ttl",
        type=float,
        default=86400.0,
        help="seconds a notification channel lives after its last subscription (the service's: 24 h)",
    )
    sub.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="ROUTE:KIND[:k=v,...]",
        help="make the simulated org misbehave, e.g. queue_observations:status:status=503,rate=0.2 (repeatable)",
    )


def _client_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of OAuth clients, at least 1, got {text!r}")
    return count


def _print_clients(sim: SimulatedOrg) -> None:
    """Every client's id; the secrets only of the simulator's own demo clients, never of given ones."""
    demo = sim.demo_clients
    given = [client for client in sim.clients if client not in demo]
    if given:
        print(f"  accepting the credentials in GENESYS_CLIENT_ID / GENESYS_CLIENT_SECRET for {', '.join(given)}")
    if demo:
        print(f"  demo credentials: GENESYS_CLIENT_ID={','.join(demo)} GENESYS_CLIENT_SECRET={','.join(demo.values())}")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as error:
        print(f"genesys-exporter: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "bench":
        return _bench(args)
    if args.command == "chaos":
        from exporter.tools.chaos import print_chaos

        logs.configure("json", "critical")
        tune_process()
        return 0 if print_chaos(args.duration, args.only) else 1
    logging_overrides = {"log_format": args.log_format, "log_level": args.log_level}
    if args.command in ("run", "check"):
        overrides: dict[str, Any] = {
            **logging_overrides,
            "listen": getattr(args, "listen", None),
            "web_config_file": getattr(args, "web_config_file", None),
        }
        settings = load_settings(args.config, overrides)
        logs.configure(settings.log_format, settings.log_level)
        logs.redact(settings.client_secret.get_secret_value())
        return asyncio.run(_run(settings) if args.command == "run" else _check(settings))
    fmt, level = args.log_format or "auto", args.log_level or "info"
    logs.configure(fmt, level)
    listen = _listen_or_exit(args.listen)
    if args.command == "simulate":
        return asyncio.run(_simulate(args, listen))
    return asyncio.run(_demo(args, listen, fmt, level))


def _bench(args: argparse.Namespace) -> int:
    from exporter.tools.bench import print_cycle_costs, print_scrape_load, print_soak

    logs.configure("console", "error")
    tune_process()  # the exporters it measures run in this process (scale: in processes of its own, which do the same)
    if args.mode == "scrape-load":
        print_scrape_load(args.scrapers, args.seconds)
        return 0
    if args.mode == "soak":
        print_soak(args.cycles)
        return 0
    try:
        sizes = [(int(q), int(a)) for q, a in (size.split("x") for size in args.sizes.split(","))]
    except ValueError:
        raise ConfigError(f"--sizes: expected QUEUESxAGENTS[,...], got {args.sizes!r}") from None
    if args.mode == "encodings":
        from exporter.tools.encodings import main as encodings

        for _, agents in sizes:
            encodings(agents, changes=args.changes, minutes=args.minutes)
        return 0
    if args.mode == "chain":
        from exporter.tools.chain import main as chain

        chain(sizes, args.minutes, clients=args.clients, agent_metrics=args.agent_metrics, gogc=args.prometheus_gogc)
        return 0
    if args.mode == "long-soak":
        from exporter.tools.soak import print_long_soak

        for queues, agents in sizes:
            print_long_soak(queues, agents, args.clients, args.minutes)
        return 0
    if args.mode == "scale":
        from exporter.tools.scale import main as scale

        scale(sizes, args.minutes, naive_seconds=args.naive_seconds, scope=args.scope, clients=args.clients)
        return 0
    print_cycle_costs(sizes, args.scope or "members")
    return 0


def _faults(args: argparse.Namespace) -> list[Fault]:
    try:
        return [parse_fault(spec) for spec in args.fault]
    except ValueError as error:
        raise ConfigError(f"--fault: {error}") from None


def _listen_or_exit(value: str) -> ListenAddress:
    try:
        return parse_listen(value)
    except ValueError as error:
        raise ConfigError(f"--listen: {error}") from None


async def _until_stopped() -> None:
    """Return on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _serve_until_stopped(exporter: Exporter) -> None:
    """Until SIGTERM or SIGINT; once the exporter is ready the heap is frozen (`freeze_heap`)."""
    freezing = asyncio.create_task(freeze_heap_when_ready(exporter.store, lambda: exporter.page.ready))
    try:
        await _until_stopped()
    finally:
        freezing.cancel()


async def _run(settings: Settings) -> int:
    from exporter.app import Exporter

    tune_process()
    async with Exporter(settings) as exporter:
        await _serve_until_stopped(exporter)
    log.info("stopped")
    return 0


async def _check(settings: Settings) -> int:
    from exporter.app import client_from_settings
    from exporter.check import run_checks
    from exporter.clock import SystemClock

    clients = settings.clients
    ok = True
    print(f"Genesys Cloud at {settings.api_base}")
    for oauth in clients:  # each client has its own permissions and channels: each is checked on its own
        async with client_from_settings(settings, SystemClock(), max_retries=1, clients=[oauth]) as client:
            findings = await run_checks(client, agent_scope=settings.agent_scope, push=settings.push == "auto")
        for finding in findings:
            print(f"{oauth.label}  {finding.line()}" if len(clients) > 1 else finding.line(), flush=True)
        ok = ok and not any(f.fails for f in findings)
    return 0 if ok else 1


def _org(args: argparse.Namespace) -> dict[str, Any]:
    """The simulated org the `--queues`, `--agents`, ... flags of `simulate` and `demo` ask for."""
    return {
        "queues": args.queues,
        "agents": args.agents,
        "seed": args.seed,
        "rate_limit": args.rate_limit,
        "heartbeat_seconds": args.heartbeat,
        "analytics_delay": args.analytics_delay,
        "channel_ttl": args.channel_ttl,
        "clients": args.clients,
    }


async def _simulate(args: argparse.Namespace, listen: ListenAddress) -> int:
    from exporter.simulator.api import serve_simulator

    # A large org's day is millions of ledger entries: with the default collector thresholds each big
    # aggregate answer set off a full pass over them, which held its sockets and its push events.
    tune_process()
    async with serve_simulator(
        host=listen.host,
        port=listen.port,
        client_id=os.environ.get("GENESYS_CLIENT_ID"),
        client_secret=os.environ.get("GENESYS_CLIENT_SECRET"),
        **_org(args),
    ) as sim:
        sim.faults.arm(*_faults(args))
        print(f"Simulated Genesys Cloud API at {sim.url} ({args.queues} queues, {args.agents} agents)", flush=True)
        _print_clients(sim)
        print(f"  point the exporter at it with GENESYS_API_URL={sim.url}", flush=True)
        await _until_stopped()
    return 0


async def _demo(args: argparse.Namespace, listen: ListenAddress, fmt: str, level: str) -> int:
    from exporter.app import Exporter
    from exporter.simulator.api import serve_simulator

    tune_process()
    async with serve_simulator(host="127.0.0.1", port=0, **_org(args)) as sim:
        sim.faults.arm(*_faults(args))
        settings = load_settings(
            None,
            {
                "client_id": ",".join(sim.clients),  # every client, as GENESYS_CLIENT_ID would list them
                "client_secret": ",".join(sim.clients.values()),
                "api_url": sim.url,
                "listen": listen,
                "log_format": fmt,
                "log_level": level,
                "rate_limit_per_minute": args.rate_limit,
            },
        )
        async with Exporter(settings) as exporter:
            print(
                f"genesys-exporter demo: simulated org with {args.queues} queues and {args.agents} agents",
                flush=True,
            )
            print(f"  metrics: {exporter.url}/metrics", flush=True)
            print(f"  status:  {exporter.url}/", flush=True)
            _print_clients(sim)
            with contextlib.suppress(asyncio.CancelledError):
                await _serve_until_stopped(exporter)
    return 0
