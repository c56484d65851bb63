"""The 'gradients' and 'time' commands: every method on one problem, each method's outcome as a result.json entry."""

import statistics
import time

import torch

from . import Unsupported
from .exchange import save_gradients
from .methods import batch_backward, per_sample_loop, per_sample_vmap
from .probes import per_sample_expanded_weights_probed


def compute_gradients(problem, out_folder):
    """Per-sample gradients by the float64 loop, vmap(grad) and ExpandedWeights, saved into `out_folder`; the
    methods' entries, an unsupported method with its reason."""
    methods = []
    loss, names = problem.loss, problem.trainable
    runs = [
        ("pytorch-loop-float64", torch.float64, lambda m, x, y: per_sample_loop(m, x, y, loss, names)),
        ("pytorch-vmap", problem.dtype, lambda m, x, y: per_sample_vmap(m, x, y, loss, names)),
        ("pytorch-expanded-weights", problem.dtype,
         lambda m, x, y: per_sample_expanded_weights_probed(m, x, y, loss, names, problem.reduction)),
    ]
    for index, (name, dtype, run) in enumerate(runs):
        model, x, y = problem.converted(dtype)
        entry = {"name": name, "dtype": str(dtype).replace("torch.", "")}
        started = time.perf_counter()
        try:
            gradients = run(model, x, y)
        except Unsupported as e:
            entry.update(status="unsupported", reason=str(e))
            methods.append(entry)
            continue
        entry["seconds"] = time.perf_counter() - started
        entry.update(status="ok", gradients=save_gradients(out_folder, index, names, gradients, dtype))
        methods.append(entry)
    return methods


def repeat_seconds(run, repeats, warmup):
    """Wall time in seconds of each of `repeats` calls of `run`, after `warmup` calls that are not counted."""
    for _ in range(warmup):
        run()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return seconds


def time_methods(problem, repeats, warmup):
    """The plain batch backward, vmap(grad), ExpandedWeights and the loop timed in the run's dtype; the methods'
    entries with every repeat's seconds and their median, an unsupported method with its reason."""
    model, x, y = problem.converted(problem.dtype)
    loss, names = problem.loss, problem.trainable
    runs = [
        ("pytorch-batch-backward", lambda: batch_backward(model, x, y, loss, names)),
        ("pytorch-vmap", lambda: per_sample_vmap(model, x, y, loss, names)),
        ("pytorch-expanded-weights",
         lambda: per_sample_expanded_weights_probed(model, x, y, loss, names, problem.reduction)),
        ("pytorch-loop", lambda: per_sample_loop(model, x, y, loss, names)),
    ]
    methods = []
    for name, run in runs:
        entry = {"name": name, "dtype": problem.dtype_name}
        try:
            run()  # the first call checks support and is not counted
        except Unsupported as e:
            entry.update(status="unsupported", reason=str(e))
            methods.append(entry)
            continue
        seconds = repeat_seconds(run, repeats, warmup)
        entry.update(status="ok", seconds_per_repeat=seconds, median_seconds=statistics.median(seconds))
        methods.append(entry)
    return methods
