"""Every architecture this package can build, by name, and the losses (src/Oracle/LossFunction.cs)."""

import torch.nn.functional as F

from . import BadInput
from .cases import CASES
from .zoo import ZOO

# Architecture name -> builder(one sample's input shape): zoo models by their zoo name, catalogue cases by their id
# without the batch and loss suffix.
ARCHITECTURES = dict(ZOO, **CASES)
if len(ARCHITECTURES) != len(ZOO) + len(CASES):
    raise RuntimeError("a catalogue case and a zoo model share a name: %s" % sorted(set(ZOO) & set(CASES)))

# Built-in losses take the declared reduction; custom losses give per-sample losses [N].
BUILT_IN_LOSSES = {
    "CE": F.cross_entropy,
    "NLL": F.nll_loss,
    "MSE": F.mse_loss,
    "L1": F.l1_loss,
}

CUSTOM_LOSSES = {
    # CaseCatalogue.SoftMargin: softplus of the negative margin, summed over outputs.
    "softmargin": lambda output, target: F.softplus(-output * target).sum(1),
}


def make_loss(name, reduction, custom):
    """(output [N, ...], target [N, ...]) -> the declared batch loss (a scalar)."""
    if reduction not in ("sum", "mean"):
        raise BadInput("loss reduction '%s' is not 'sum' or 'mean'" % reduction)
    if not custom and name in BUILT_IN_LOSSES:
        function = BUILT_IN_LOSSES[name]
        return lambda output, target: function(output, target, reduction=reduction)
    if custom and name in CUSTOM_LOSSES:
        per_sample = CUSTOM_LOSSES[name]
        if reduction == "sum":
            return lambda output, target: per_sample(output, target).sum()
        return lambda output, target: per_sample(output, target).mean()
    raise BadInput("%s loss '%s' is not known to the PyTorch reference; built-in: %s; custom: %s"
                   % ("custom" if custom else "built-in", name, ", ".join(sorted(BUILT_IN_LOSSES)),
                      ", ".join(sorted(CUSTOM_LOSSES))))


def build(architecture, sample_shape):
    """A fresh model of `architecture` for samples of `sample_shape` (float32, default initialisation)."""
    if architecture not in ARCHITECTURES:
        raise BadInput("architecture '%s' is not known to the PyTorch reference (tools/pytorch_reference); known: %s"
                       % (architecture, ", ".join(sorted(ARCHITECTURES))))
    return ARCHITECTURES[architecture](tuple(sample_shape))
