"""The PyTorch reference's command line: python3 -m pytorch_reference COMMAND ...

Commands
  versions                      print Python, PyTorch and numpy versions, the vmap API and torch.get_num_threads()
                                as JSON on stdout
  architectures                 print the architecture names this package can build, one per line
  gradients FOLDER [--threads N]
                                per-sample gradients by every method (methods.py) into FOLDER/result/
  time FOLDER --repeats R [--warmup W] [--threads N]
                                median wall time of R repeats (after W warm-up runs) of the plain batch backward,
                                vmap(grad), ExpandedWeights and the per-sample loop, all in the run's dtype

Exit statuses: see __init__.py.
"""

import argparse
import json
import platform
import sys

from . import FORMAT, EXIT_BAD_INPUT, EXIT_MISSING_DEPENDENCY, BadInput

try:
    import numpy as np
    import torch
except ImportError as missing:
    sys.stderr.write(
        "pytorch_reference: missing Python module '%s' for %s (Python %s). On Debian 12: "
        "apt-get install --no-install-recommends python3-torch (or run scripts/setup.sh); elsewhere install PyTorch "
        "and numpy and point PSG_PYTHON at that Python.\n" % (missing.name, sys.executable, platform.python_version()))
    sys.exit(EXIT_MISSING_DEPENDENCY)

from .exchange import Problem, result_folder, write_result
from .methods import VMAP, versions
from .models import ARCHITECTURES
from .runs import compute_gradients, time_methods


def parse(argv):
    parser = argparse.ArgumentParser(prog="python3 -m pytorch_reference", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("versions")
    commands.add_parser("architectures")
    gradients = commands.add_parser("gradients")
    gradients.add_argument("folder")
    gradients.add_argument("--threads", type=int)
    timing = commands.add_parser("time")
    timing.add_argument("folder")
    timing.add_argument("--threads", type=int)
    timing.add_argument("--repeats", type=int, required=True)
    timing.add_argument("--warmup", type=int, default=1)
    return parser.parse_args(argv)


def main(argv):
    args = parse(argv)
    if args.command == "versions":
        print(json.dumps(versions()))
        return 0
    if args.command == "architectures":
        print("\n".join(sorted(ARCHITECTURES)))
        return 0
    if args.threads is not None:
        if args.threads < 1:
            raise BadInput("--threads must be at least 1, got %d" % args.threads)
        torch.set_num_threads(args.threads)
    problem = Problem(args.folder)
    out_folder = result_folder(args.folder)
    result = {"format": FORMAT, "problem": problem.problem, "architecture": problem.architecture,
              "versions": versions(), "threads": torch.get_num_threads()}
    print("%s %s: PyTorch %s (vmap: %s), numpy %s, Python %s, %d thread(s)"
          % (args.command, problem.problem, torch.__version__, VMAP.name or VMAP.problem, np.__version__,
             platform.python_version(), torch.get_num_threads()))
    if args.command == "gradients":
        result["methods"] = compute_gradients(problem, out_folder)
    else:
        if args.repeats < 1 or args.warmup < 0:
            raise BadInput("--repeats must be at least 1 and --warmup at least 0")
        result.update(repeats=args.repeats, warmup=args.warmup,
                      methods=time_methods(problem, args.repeats, args.warmup))
    write_result(out_folder, result)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BadInput as e:
        sys.stderr.write("pytorch_reference: %s\n" % e)
        sys.exit(EXIT_BAD_INPUT)
