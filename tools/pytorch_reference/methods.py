"""Per-sample gradient methods: each returns {name: [N, ...]} for the trainable parameters.

  pytorch-loop-float64      the naive loop (run in float64 by the 'gradients' command): sample i's gradient is the
                            gradient of the loss on the batch of one (x_i, y_i) with the declared reduction. The same
                            definition as the C# oracle.
  pytorch-vmap              vmap(grad(loss on the batch of one)) in the run's dtype, with torch.func when present,
                            else functorch (PyTorch 1.13) over torch.nn.utils.stateless.functional_call.
  pytorch-expanded-weights  torch.nn.utils._per_sample_grad.call_for_per_sample_grads in the run's dtype. It rejects
                            some layers and functions: that method is then reported as unsupported with PyTorch's
                            reason, and the other methods still run. Known defects: probes.py.

Every method returns the gradient of each sample's own loss L_i (the loss on its batch of one, declared reduction):
  * the loop and vmap evaluate exactly that loss, so no conversion is needed, for 'sum' and 'mean' alike (for a
    batch of one, 'mean' still averages over the sample's own elements: MSE over D outputs, CE over positions);
  * ExpandedWeights differentiates the declared loss of the whole batch. With 'sum' that batch loss is sum_i L_i, and
    grad_sample is already per-sample. With 'mean' the batch loss is (1/N) sum_i L_i, so each sample's output
    gradient carries a factor 1/N; call_for_per_sample_grads(loss_reduction="mean", batch_size=N) multiplies
    grad_sample by N, which cancels it. So the declared reduction goes in as loss_reduction and the batch size
    explicitly, and grad_sample is the gradient of L_i in both cases.
"""

import platform

import numpy as np
import torch

from . import Unsupported


class VmapApi:
    """vmap, grad and functional_call from torch.func (PyTorch >= 2.0) or functorch (PyTorch 1.13); else the
    problem, in words."""

    def __init__(self):
        self.name = None
        self.problem = None
        try:
            import torch.func as tf  # PyTorch >= 2.0
            self.name, self.vmap, self.grad, self.functional_call = "torch.func", tf.vmap, tf.grad, tf.functional_call
            return
        except ImportError:
            pass
        try:
            import functorch
            from torch.nn.utils.stateless import functional_call
            self.name, self.vmap, self.grad, self.functional_call = (
                "functorch " + getattr(functorch, "__version__", "?"), functorch.vmap, functorch.grad, functional_call)
        except ImportError as e:
            self.problem = "PyTorch %s has neither torch.func nor functorch (%s)" % (torch.__version__, e)


VMAP = VmapApi()


def expanded_weights():
    """call_for_per_sample_grads, or None with the reason."""
    try:
        from torch.nn.utils._per_sample_grad import call_for_per_sample_grads
        return call_for_per_sample_grads, None
    except ImportError as e:
        return None, "PyTorch %s has no torch.nn.utils._per_sample_grad (%s)" % (torch.__version__, e)


def versions():
    """The versions the C# side reports (ExchangeManifest.cs), and torch.get_num_threads()."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "vmap_api": VMAP.name,
        "expanded_weights": expanded_weights()[0] is not None,
        "threads": torch.get_num_threads(),
    }


def per_sample_loop(model, x, y, loss, names):
    """The oracle's definition: one forward and backward per sample on its batch of one, declared reduction."""
    parameters = dict(model.named_parameters())
    chosen = [parameters[n] for n in names]
    results = {n: torch.zeros((x.shape[0],) + tuple(parameters[n].shape), dtype=parameters[n].dtype) for n in names}
    for i in range(x.shape[0]):
        sample_loss = loss(model(x[i:i + 1]), y[i:i + 1])
        gradients = torch.autograd.grad(sample_loss, chosen, allow_unused=True)
        for n, g in zip(names, gradients):
            if g is not None:
                results[n][i] = g
    return results


def per_sample_vmap(model, x, y, loss, names):
    """vmap over samples of grad(loss on the batch of one), through a functional call of the model."""
    if VMAP.problem:
        raise Unsupported(VMAP.problem)
    parameters = {n: p.detach() for n, p in model.named_parameters()}
    trainable = {n: parameters[n] for n in names}
    fixed = {n: p for n, p in parameters.items() if n not in trainable}
    fixed.update({n: b for n, b in model.named_buffers()})

    def sample_loss(trainable, xi, yi):
        state = dict(fixed)
        state.update(trainable)
        output = VMAP.functional_call(model, state, (xi.unsqueeze(0),))
        return loss(output, yi.unsqueeze(0))

    try:
        gradients = VMAP.vmap(VMAP.grad(sample_loss), in_dims=(None, 0, 0))(trainable, x, y)
    except RuntimeError as e:  # functorch 1.13 has no batching rule for some layers (nn.LSTM's _VF.lstm)
        message = str(e).strip().splitlines()
        raise Unsupported("%s: %s" % (type(e).__name__, message[0] if message else "(no message)"))
    return {n: gradients[n] for n in names}


def per_sample_expanded_weights(model, x, y, loss, names, reduction):
    """ExpandedWeights on the declared batch loss; loss_reduction equal to the declared reduction (see the top).
    Unsupported when this PyTorch lacks it or rejects the model; its known defects are probes.py's business."""
    call_for_per_sample_grads, problem = expanded_weights()
    if problem:
        raise Unsupported(problem)
    parameters = dict(model.named_parameters())
    try:
        try:
            output = call_for_per_sample_grads(model, batch_size=x.shape[0], loss_reduction=reduction)(x)
            loss(output, y).backward()
        except Exception as e:  # ExpandedWeights rejects layers and functions it has no rule for
            message = str(e).strip().splitlines()
            raise Unsupported("%s: %s" % (type(e).__name__, message[0] if message else "(no message)"))
        results = {}
        for n in names:
            g = getattr(parameters[n], "grad_sample", None)
            results[n] = (torch.zeros((x.shape[0],) + tuple(parameters[n].shape), dtype=parameters[n].dtype)
                          if g is None else g.detach())
        return results
    finally:
        # ExpandedWeights accumulates into grad_sample and refuses a parameter that still has one.
        for p in parameters.values():
            p.grad_sample = None
            p.grad = None


def batch_backward(model, x, y, loss, names):
    """The plain training step's gradient computation: one forward and backward of the declared batch loss."""
    parameters = dict(model.named_parameters())
    return torch.autograd.grad(loss(model(x), y), [parameters[n] for n in names], allow_unused=True)
