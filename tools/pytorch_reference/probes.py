"""Known ways ExpandedWeights answers wrongly instead of refusing. A model with such a module gets ExpandedWeights
reported as unsupported, but only when a probe on a tiny module shows that this PyTorch still has the defect."""

import torch
from torch import nn

from . import Unsupported
from .methods import expanded_weights, per_sample_expanded_weights, per_sample_loop


def _instance_norm_with_running_stats():
    norm = nn.InstanceNorm1d(2, affine=True, track_running_stats=True).double().eval()
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor([0.5, -0.25]))
        norm.running_var.copy_(torch.tensor([2.0, 0.5]))
    return norm


# (does a module of the model have it, a tiny module with it, an input for that module, what goes wrong).
EXPANDED_WEIGHTS_PROBES = [
    (lambda m: isinstance(m, nn.Embedding) and m.padding_idx is not None,
     lambda: nn.Embedding(3, 2, padding_idx=0).double(),
     lambda: torch.tensor([[0, 1, 2], [2, 0, 0]]),
     "ignores Embedding's padding_idx: its per-sample rule gives the padding row a gradient where autograd gives zero"),
    (lambda m: isinstance(m, nn.modules.instancenorm._InstanceNorm) and m.track_running_stats and not m.training,
     _instance_norm_with_running_stats,
     lambda: torch.linspace(-1.0, 2.0, 12, dtype=torch.float64).reshape(2, 2, 3),
     "ignores InstanceNorm's running statistics in eval mode: its backward normalises with each sample's own "
     "statistics, which the forward did not use"),
]


def expanded_weights_defect(model):
    """The first known defect of this PyTorch's ExpandedWeights that affects `model`, confirmed by its probe; None
    when there is none."""
    for affects, make_module, make_input, what in EXPANDED_WEIGHTS_PROBES:
        if not any(affects(m) for m in model.modules()):
            continue
        module, x = make_module(), make_input()
        names = [n for n, _ in module.named_parameters()]
        loss = lambda output, target: (output * torch.linspace(0.5, 1.5, output.numel(), dtype=torch.float64)
                                       .reshape(output.shape)).sum()
        expected = per_sample_loop(module, x, x, loss, names)
        actual = per_sample_expanded_weights(module, x, x, loss, names, "sum")
        if any(not torch.allclose(actual[n], expected[n]) for n in names):
            return ("PyTorch %s's ExpandedWeights %s (a probe on a tiny module disagrees with autograd)"
                    % (torch.__version__, what))
    return None


def per_sample_expanded_weights_probed(model, x, y, loss, names, reduction):
    """methods.per_sample_expanded_weights, also unsupported when a known defect of this PyTorch's ExpandedWeights
    affects one of the model's modules."""
    _, problem = expanded_weights()
    if problem:
        raise Unsupported(problem)
    defect = expanded_weights_defect(model)
    if defect:
        raise Unsupported(defect)
    return per_sample_expanded_weights(model, x, y, loss, names, reduction)
