"""Command line of flashplus. Each subcommand lives in its own module with a `run(args)`.

`bench ring` is the ring-attention benchmark (run under torchrun); it owns its own arguments, so
it is routed before argparse sees them.
"""
import argparse
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["bench", "ring"]:
        from ..bench_ring import main as ring_main
        return ring_main(argv[2:])
    parser = argparse.ArgumentParser(prog="python -m flashplus", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    doctor = sub.add_parser("doctor", help="show the environment and build, self-test each backend")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    bench = sub.add_parser("bench", help="time flashplus against torch SDPA on this machine")
    from .bench import add_arguments as add_bench_arguments
    add_bench_arguments(bench)
    sub.add_parser("demo", help="run a small attention call on each backend and explain it")
    args = parser.parse_args(argv)
    if args.command == "doctor":
        from . import doctor as command
    elif args.command == "bench":
        from . import bench as command
    else:
        from . import demo as command
    return command.run(args)
