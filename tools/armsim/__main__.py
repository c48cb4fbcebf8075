"""Command line: ``python -m armsim serve ...`` and ``python -m armsim fleet ...``."""

import argparse
import json
import logging
import os
import shutil
import signal
import ssl
import sys
import tempfile
import threading

import trustme


def _write_ready(path: str, info: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2)
    os.replace(tmp, path)


def serve(args: argparse.Namespace) -> int:
    from armsim import profile
    from armsim.seed import SeedError
    from armsim.server import App, ArmSimServer

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="armsim %(levelname)s %(message)s")
    state_dir = args.state_dir or tempfile.mkdtemp(prefix="armsim-")
    os.makedirs(state_dir, exist_ok=True)
    try:
        service = profile.load(args.profile, args.profile_set)
    except ValueError as exc:
        print(f"armsim: {exc}", file=sys.stderr)
        return 2
    # The profile's figures unless the command line names its own.
    try:
        app = App(
            args.seed,
            apply_delay=service.apply_delay if args.apply_delay is None else args.apply_delay,
            page_size=args.page_size,
            lro_retry_after=service.lro_retry_after if args.lro_retry_after is None else args.lro_retry_after,
            lro_in_progress=service.lro_in_progress if args.lro_in_progress is None else args.lro_in_progress,
            profile=service,
            token_lifetime=args.token_lifetime,
            state_dir=state_dir,
        )
    except (SeedError, OSError) as exc:
        print(f"armsim: cannot load seed {args.seed}: {exc}", file=sys.stderr)
        return 2
    ca = trustme.CA(organization_name="armsim test CA")
    ca_path = os.path.join(state_dir, "ca.pem")
    ca.cert_pem.write_to_path(ca_path)
    leaf = ca.issue_cert("127.0.0.1", "localhost", args.host)
    ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ssl_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    leaf.configure_cert(ssl_ctx)
    server = ArmSimServer(app, args.host, args.port, ssl_ctx, ca_path)
    server.start()
    info = server.ready_info()
    if args.ready_file:
        _write_ready(args.ready_file, info)
    else:
        print(json.dumps(info), flush=True)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    while not stop.wait(0.5):
        pass
    server.stop()
    if not args.state_dir:
        shutil.rmtree(state_dir, ignore_errors=True)
    return 0


def fleet(args: argparse.Namespace) -> int:
    from armsim.fleet import generate, to_yaml

    data = generate(
        vms=args.vms,
        resource_groups=args.resource_groups,
        locations=args.locations,
        windows_fraction=args.windows_fraction,
        no_nsg_fraction=args.no_nsg_fraction,
        subnet_nsg_fraction=args.subnet_nsg_fraction,
        open_ssh_fraction=args.open_ssh_fraction,
        stopped_fraction=args.stopped_fraction,
        seed=args.seed,
    )
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    try:
        out.write(to_yaml(data))
    finally:
        if args.output:
            out.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="armsim", description="An offline Azure (Entra ID + ARM over HTTPS) for tests, demos and benchmarks.")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve a seed over HTTPS until SIGTERM/SIGINT")
    s.add_argument("--seed", required=True, help="seed YAML file")
    s.add_argument("--port", type=int, default=0, help="HTTPS port (default 0: any free port)")
    s.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1; keep it on loopback)")
    s.add_argument("--ready-file", help="write the ready JSON here (default: print it on stdout)")
    s.add_argument("--profile", default="instant", help="service profile: instant (default: no latency, no throttling) or azure (README.md, Profiles)")
    s.add_argument("--profile-set", action="append", default=[], metavar="KEY=VALUE", help="override one figure of the profile (repeatable)")
    s.add_argument(
        "--apply-delay", type=float, default=None, help="seconds before an initiated JIT request's allow rules appear (default: the profile's, 0 for instant)"
    )
    s.add_argument("--page-size", type=int, default=100, help="items per list page before a nextLink (default 100)")
    s.add_argument("--lro-retry-after", type=int, default=None, help="Retry-After seconds on long-running operations (default: the profile's, 1)")
    s.add_argument("--lro-in-progress", type=float, default=None, help="seconds an operation reports InProgress (default: the profile's, 0.5)")
    s.add_argument("--token-lifetime", type=int, default=3599, help="access token lifetime in seconds (default 3599)")
    s.add_argument("--state-dir", help="directory for ca.pem (default: a temporary directory removed on exit)")
    s.add_argument("--verbose", action="store_true", help="log every request to stderr")
    s.set_defaults(func=serve)

    f = sub.add_parser("fleet", help="print a generated seed for a large fleet (deterministic)")
    f.add_argument("--vms", type=int, required=True)
    f.add_argument("--resource-groups", type=int, default=1)
    f.add_argument("--locations", type=int, default=1)
    f.add_argument("--windows-fraction", type=float, default=0.3)
    f.add_argument("--no-nsg-fraction", type=float, default=0.05)
    f.add_argument("--subnet-nsg-fraction", type=float, default=0.3)
    f.add_argument("--open-ssh-fraction", type=float, default=0.05)
    f.add_argument("--stopped-fraction", type=float, default=0.05)
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--output", "-o", help="write here instead of stdout")
    f.set_defaults(func=fleet)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
