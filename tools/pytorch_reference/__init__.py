"""PyTorch as an independent reference for PerSampleGrads.

The C# side (src/PerSampleGrads/Interop/PyTorchReference.cs) writes an exchange folder: request.json plus one .npy
file per parameter, buffer, the inputs and the targets, and this package beside them. The package rebuilds the same
model in PyTorch from the architecture named in the request, loads the weights strictly by name and shape, and writes
its answers back into <folder>/result/: result.json plus one .npy per parameter per method. Run it as
`python3 -m pytorch_reference COMMAND ...` with the folder holding this package on the path (from the repository:
`PYTHONPATH=tools python3 -m pytorch_reference versions`); __main__.py lists the commands.

Modules
  __main__   the command line: dependency check, commands, exit statuses
  zoo        the zoo's models (src/PerSampleGrads/Zoo)
  cases      the catalogue's cases by architecture name (src/PerSampleGrads/Cases)
  models     every architecture by name, and the losses
  exchange   the exchange folder: request.json and .npy in, result/ out
  methods    per-sample gradients by the float64 loop, vmap(grad) and ExpandedWeights; the plain batch backward
  probes     ExpandedWeights' known defects, each confirmed on a tiny module before a model is refused
  runs       the 'gradients' and 'time' commands: every method on one problem

Exit status: 0 success; 2 bad input (unknown architecture or loss, a parameter missing, unexpected or of another
shape, a malformed exchange), with one line on stderr naming what differs; 3 torch or numpy missing; 1 anything
else (traceback on stderr).

Only the standard library, torch and numpy are used; it runs on PyTorch 1.13 (Debian 12's python3-torch) and on
PyTorch 2.x. This file imports neither, so that __main__ can report a missing one.
"""

FORMAT = 1
EXIT_BAD_INPUT = 2
EXIT_MISSING_DEPENDENCY = 3


class BadInput(Exception):
    """The exchange does not describe something this package can reproduce; the message names what differs."""


class Unsupported(Exception):
    """The method cannot handle this model or this PyTorch; reported per method, the run goes on."""
