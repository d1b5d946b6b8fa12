"""`baseforge` command line: engine start/stop, doctor, verify, lock. Errors print as one paragraph, exit 1."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import BaseforgeError
from .run import setup_logging

STATE = Path(os.environ.get("BASEFORGE_STATE", "/var/lib/baseforge"))
RUN_DIR = Path(os.environ.get("BASEFORGE_RUN", "/run/baseforge"))


def cmd_engine(args: argparse.Namespace) -> int:
    from . import daemon, engine

    if args.action == "start":
        if os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists():
            if daemon.answers(engine.host()):
                print(f"export DOCKER_HOST={engine.host()}")
                return 0
        url = daemon.start(STATE / "engine", RUN_DIR)
        print(f"export DOCKER_HOST={url}")
    elif args.action == "stop":
        daemon.stop(RUN_DIR, STATE / "engine")
    else:
        print(f"export DOCKER_HOST={engine.host()}" if daemon.answers(engine.host()) else "no engine answers")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor

    return doctor(Path(args.config), workdir=Path.cwd(), on_node=args.on_node)


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify

    return verify(Path(args.config), args.cells, workdir=Path.cwd(), keep=args.keep)


def cmd_lock(args: argparse.Namespace) -> int:
    from .lock import command

    mode = "check" if args.check else "update" if args.update else "write"
    return command(Path(args.config), args.cells, workdir=Path.cwd(), mode=mode)


def cmd_check(args: argparse.Namespace) -> int:
    """Check config files as a run would (strict YAML, schema, plan, mirrors) without Snakemake, which reads
    ``--configfile`` files itself before baseforge can and says only "Config file is not valid JSON or YAML"."""
    from . import config

    merged: dict = {}
    for path in args.files:
        merged = merge(merged, config.load(Path(path)))
    plan = config.plan(merged, Path.cwd())
    print(f"baseforge: {', '.join(args.files)}: the config is valid ({len(plan.images)} images, {len(plan.apps)} apps)")
    return 0


def merge(base: dict, new: dict) -> dict:
    """``new`` over ``base``, mappings merged key by key (as Snakemake merges several config files)."""
    out = dict(base)
    for key, value in new.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="baseforge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("engine", help="start, stop or show a private Docker Engine")
    p.add_argument("action", choices=["start", "stop", "env"])
    p.set_defaults(func=cmd_engine)
    p = sub.add_parser("doctor", help="check the host: engine, binfmt, subuid, bootstrappers, cache dirs")
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--on-node", action="store_true", help="check a cluster node (run it with srun): no engine, shared dirs")
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("verify", help="rebuild cells and apps in a fresh directory and compare with the recorded digests")
    p.add_argument("cells", nargs="*", help="cell paths like debian/bookworm/default/amd64, apps/<name> (default: all, and every built app)")
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--keep", action="store_true", help="keep the rebuild directory")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("lock", help="resolve cells and apps' packages against their mirrors and write config/locks/<cell or apps/app>.lock")
    p.add_argument("cells", nargs="*", help="cell paths like debian/bookworm/default/amd64, apps/<name> (default: all)")
    p.add_argument("--config", default="config/config.yaml")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--check", action="store_true", help="write nothing; exit 1 and print what moved")
    how.add_argument("--update", action="store_true", help="rewrite existing locks too")
    p.set_defaults(func=cmd_lock)
    p = sub.add_parser("check", help="check config files (file, line and column of a YAML mistake; the schema; the mirrors)")
    p.add_argument("files", nargs="*", default=["config/config.yaml"], help="the files given to --configfile, in that order")
    p.set_defaults(func=cmd_check)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        return args.func(args)
    except BaseforgeError as err:
        sys.stderr.write(f"baseforge: {err}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
