#!/usr/bin/env python3
"""PyTorch as an independent reference for PerSampleGrads.

The C# side (src/PerSampleGrads/Interop/PyTorchReference.cs) writes an exchange folder: request.json plus one .npy
file per parameter, buffer, the inputs and the targets. This script rebuilds the same model in PyTorch from the
architecture named in the request, loads the weights strictly by name, and writes its answers back into
<folder>/result/: result.json plus one .npy per parameter per method.

Commands
  versions                      print Python, PyTorch and numpy versions, the vmap API and torch.get_num_threads()
                                as JSON on stdout
  architectures                 print the architecture names this script can build, one per line
  gradients FOLDER [--threads N]
                                per-sample gradients by every method (below)
  time FOLDER --repeats R [--warmup W] [--threads N]
                                median wall time of R repeats (after W warm-up runs) of the plain batch backward,
                                vmap(grad), ExpandedWeights and the per-sample loop, all in the run's dtype

Methods (gradients)
  pytorch-loop-float64      the naive loop in float64: sample i's gradient is the gradient of the loss on the batch
                            of one (x_i, y_i) with the declared reduction. The same definition as the C# oracle.
  pytorch-vmap              vmap(grad(loss on the batch of one)) in the run's dtype, with torch.func when present,
                            else functorch (PyTorch 1.13) over torch.nn.utils.stateless.functional_call.
  pytorch-expanded-weights  torch.nn.utils._per_sample_grad.call_for_per_sample_grads in the run's dtype. It rejects
                            some layers and functions: that method is then reported as unsupported with PyTorch's
                            reason, and the other methods still run.

Every method returns the gradient of each sample's own loss L_i (the loss on its batch of one, declared reduction):
  * the loop and vmap evaluate exactly that loss, so no conversion is needed, for 'sum' and 'mean' alike (for a
    batch of one, 'mean' still averages over the sample's own elements: MSE over D outputs, CE over positions);
  * ExpandedWeights differentiates the declared loss of the whole batch. With 'sum' that batch loss is sum_i L_i, and
    grad_sample is already per-sample. With 'mean' the batch loss is (1/N) sum_i L_i, so each sample's output
    gradient carries a factor 1/N; call_for_per_sample_grads(loss_reduction="mean", batch_size=N) multiplies
    grad_sample by N, which cancels it. So the script passes the declared reduction as loss_reduction and the
    batch size explicitly, and grad_sample is the gradient of L_i in both cases.

Exit status: 0 success; 2 bad input (unknown architecture or loss, a parameter missing, unexpected or of another
shape, a malformed exchange), with one line on stderr naming what differs; 3 torch or numpy missing; 1 anything
else (traceback on stderr).

Only the standard library, torch and numpy are used; it runs on PyTorch 1.13 (Debian 12's python3-torch) and on
PyTorch 2.x.
"""

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time

FORMAT = 1
EXIT_BAD_INPUT = 2
EXIT_MISSING_DEPENDENCY = 3

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as missing:
    sys.stderr.write(
        "pytorch_reference: missing Python module '%s' for %s (Python %s). On Debian 12: "
        "apt-get install --no-install-recommends python3-torch (or run scripts/setup.sh); elsewhere install PyTorch "
        "and numpy and point PSG_PYTHON at that Python.\n" % (missing.name, sys.executable, platform.python_version()))
    sys.exit(EXIT_MISSING_DEPENDENCY)


class BadInput(Exception):
    """The exchange does not describe something this script can reproduce; the message names what differs."""


class Unsupported(Exception):
    """The method cannot handle this model or this PyTorch; reported per method, the run goes on."""


# ---------------------------------------------------------------------------------------------------------------
# vmap API: torch.func (PyTorch >= 2.0) or functorch (PyTorch 1.13)
# ---------------------------------------------------------------------------------------------------------------

class VmapApi:
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
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "vmap_api": VMAP.name,
        "expanded_weights": expanded_weights()[0] is not None,
        "threads": torch.get_num_threads(),
    }


# ---------------------------------------------------------------------------------------------------------------
# Architectures. Parameter names must equal the C# side's (src/PerSampleGrads/Zoo, src/PerSampleGrads/Cases): the
# weights are loaded strictly by name and shape, so any drift shows up as a named error, not as a wrong answer.
# ---------------------------------------------------------------------------------------------------------------

class SmallCnn(nn.Module):
    """Zoo 'small-cnn' (ZooModels.cs, SmallCnn)."""

    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.GroupNorm(8, 32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(32, classes)

    def forward(self, x):
        return self.classifier(self.features(x))


class TokenClassifier(nn.Module):
    """Zoo 'sequence' (ZooModels.cs, TokenClassifier): embedding, LayerNorm, per-token Linear, ReLU, mean, head."""

    def __init__(self, vocabulary=50, width=16, classes=5):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, width, padding_idx=0)
        self.norm = nn.LayerNorm(width)
        self.mixer = nn.Linear(width, width)
        self.head = nn.Linear(width, classes)

    def forward(self, tokens):
        h = self.norm(self.embedding(tokens))
        h = F.relu(self.mixer(h))
        return self.head(h.mean(1))


class BasicBlock(nn.Module):
    """TorchVision's ResNet BasicBlock (torchvision/models/resnet.py), norm layer given."""

    def __init__(self, inplanes, planes, stride, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = norm(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), norm(planes))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """TorchVision's resnet18(num_classes, norm_layer): the same module names (conv1, bn1, layer1.0.conv1, ...,
    layer2.0.downsample.0/1, fc), written out so that torchvision is not needed."""

    def __init__(self, classes, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for index, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
            self.add_module("layer%d" % index,
                            nn.Sequential(BasicBlock(inplanes, planes, stride, norm), BasicBlock(planes, planes, 1, norm)))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def group_norm_min32(channels):
    """The zoo's norm layer: GroupNorm(min(32, C), C)."""
    return nn.GroupNorm(min(32, channels), channels)


class SharedTwice(nn.Module):
    """Case 'shared-linear-twice' (CaseModels.cs): one Linear used twice, y = head(shared(relu(shared(x))))."""

    def __init__(self, width, classes):
        super().__init__()
        self.shared = nn.Linear(width, width)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        return self.head(self.shared(F.relu(self.shared(x))))


class UnusedBranch(nn.Module):
    """Case 'unused-branch': a trainable Linear that never reaches the output."""

    def __init__(self, width, classes):
        super().__init__()
        self.used = nn.Linear(width, classes)
        self.unused = nn.Linear(width, classes)

    def forward(self, x):
        return self.used(x)


class GainShiftTanh(nn.Module):
    """CustomModules.cs: tanh(x * gain + shift) over the last dimension, raw parameters without a rule."""

    def __init__(self, features):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(features))
        self.shift = nn.Parameter(torch.zeros(features))

    def forward(self, x):
        return torch.tanh(x * self.gain + self.shift)


class ScaledLinear(nn.Module):
    """CustomModules.cs: linear(x) * scale, a raw parameter beside a child with a rule."""

    def __init__(self, inputs, outputs):
        super().__init__()
        self.linear = nn.Linear(inputs, outputs)
        self.scale = nn.Parameter(torch.ones(outputs))

    def forward(self, x):
        return self.linear(x) * self.scale


def nested(width, classes):
    """Case 'nested-sequential': Sequential(outer=Sequential(Linear, ReLU), deep=Sequential(inner=Sequential(linear)))."""
    from collections import OrderedDict
    return nn.Sequential(OrderedDict([
        ("outer", nn.Sequential(nn.Linear(width, width), nn.ReLU())),
        ("deep", nn.Sequential(OrderedDict([("inner", nn.Sequential(OrderedDict([("linear", nn.Linear(width, classes))])))]))),
    ]))


def plain(layers):
    """CaseCatalogue's Plain: the layers as a Sequential named 0, 1, ..."""
    return lambda sample_shape: nn.Sequential(*layers())


def classifier(classes, layers, tokens=False):
    """CaseCatalogue's Classifier (CaseModels.Build): the layers, then Flatten and a Linear sized from the layers'
    output on one sample."""

    def build(sample_shape):
        body = list(layers())
        with torch.no_grad():
            probe = torch.zeros((1,) + tuple(sample_shape), dtype=torch.int64 if tokens else torch.float32)
            for layer in body:
                probe = layer(probe)
        return nn.Sequential(*body, nn.Flatten(), nn.Linear(probe[0].numel(), classes))

    return build


# Architecture name -> builder(one sample's input shape). Zoo models go by their zoo name; catalogue cases by their
# id without the batch and loss suffix ('conv2d-k3-s2-d2-g2-B5-ce-mean' -> 'conv2d-k3-s2-d2-g2'). Each entry
# restates CaseCatalogue.cs's definition; frozen parameters come from the request's requires_grad flags.
ARCHITECTURES = {
    # Zoo (ModelZoo.cs)
    "small-cnn": lambda s: SmallCnn(),
    "mlp": plain(lambda: [nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10)]),
    "sequence": lambda s: TokenClassifier(),
    "resnet18-gn": lambda s: ResNet18(10, group_norm_min32),
    # Linear
    "linear-2d": plain(lambda: [nn.Linear(6, 4)]),
    "linear-3d": plain(lambda: [nn.Linear(5, 3)]),
    "linear-4d": plain(lambda: [nn.Linear(5, 4)]),
    "linear-nobias": classifier(5, lambda: [nn.Linear(9, 6, bias=False), nn.Tanh()]),
    # Conv1d
    "conv1d-k3-p1": classifier(5, lambda: [nn.Conv1d(3, 5, 3, padding=1)]),
    "conv1d-k3-s2-d2-g3": classifier(5, lambda: [nn.Conv1d(6, 9, 3, stride=2, dilation=2, groups=3)]),
    "conv1d-same-k4": classifier(5, lambda: [nn.Conv1d(2, 4, 4, padding="same")]),
    "conv1d-valid-nobias": classifier(5, lambda: [nn.Conv1d(3, 4, 3, padding="valid", bias=False)]),
    "conv1d-reflect-p2": classifier(5, lambda: [nn.Conv1d(2, 3, 3, padding=2, padding_mode="reflect")]),
    # Conv2d
    "conv2d-k3-s2-d2-g2": classifier(5, lambda: [nn.Conv2d(4, 6, 3, stride=2, dilation=2, groups=2)]),
    "conv2d-k3-p1": classifier(5, lambda: [nn.Conv2d(3, 4, 3, padding=1)]),
    "conv2d-depthwise-k3": classifier(5, lambda: [nn.Conv2d(4, 8, 3, padding=1, groups=4)]),
    "conv2d-k2x3-s1x2-p1x0": classifier(5, lambda: [nn.Conv2d(3, 5, (2, 3), stride=(1, 2), padding=(1, 0))]),
    "conv2d-same-k4-d2": classifier(5, lambda: [nn.Conv2d(2, 3, 4, padding="same", dilation=2)]),
    "conv2d-valid-nobias": classifier(3, lambda: [nn.Conv2d(3, 4, 3, padding="valid", bias=False)]),
    "conv2d-reflect-p1": classifier(5, lambda: [nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect")]),
    "conv2d-circular-p1": classifier(5, lambda: [nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular")]),
    # Normalisation
    "groupnorm-g1": classifier(5, lambda: [nn.Conv2d(4, 6, 3), nn.GroupNorm(1, 6), nn.ReLU()]),
    "groupnorm-g3": classifier(5, lambda: [nn.Conv2d(4, 6, 3), nn.GroupNorm(3, 6), nn.ReLU()]),
    "groupnorm-g6": classifier(5, lambda: [nn.Conv2d(4, 6, 3), nn.GroupNorm(6, 6)]),
    "groupnorm-1d": classifier(5, lambda: [nn.Conv1d(4, 6, 3), nn.GroupNorm(2, 6)]),
    "layernorm-1d": plain(lambda: [nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 3)]),
    "layernorm-2d": classifier(5, lambda: [nn.LayerNorm([4, 5])]),
    "layernorm-3d-tokens": classifier(5, lambda: [nn.Linear(8, 8), nn.LayerNorm(8), nn.GELU()]),
    "instancenorm1d-affine": classifier(5, lambda: [nn.Conv1d(3, 4, 3), nn.InstanceNorm1d(4, affine=True)]),
    "instancenorm2d-affine": classifier(5, lambda: [nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4, affine=True), nn.ReLU()]),
    "instancenorm2d-running-stats": classifier(
        5, lambda: [nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4, affine=True, track_running_stats=True)]),
    "instancenorm3d-affine": classifier(5, lambda: [nn.Conv3d(2, 3, 2), nn.InstanceNorm3d(3, affine=True)]),
    "instancenorm3d-running-stats": classifier(
        5, lambda: [nn.Conv3d(2, 3, 2), nn.InstanceNorm3d(3, affine=True, track_running_stats=True)]),
    # BatchNorm in eval mode (the running statistics travel as buffers)
    "batchnorm1d-eval-features": classifier(5, lambda: [nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Tanh()]),
    "batchnorm1d-eval-signal": classifier(5, lambda: [nn.Conv1d(3, 4, 3), nn.BatchNorm1d(4)]),
    "batchnorm2d-eval": classifier(5, lambda: [nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()]),
    "batchnorm3d-eval": classifier(5, lambda: [nn.Conv3d(2, 3, 2), nn.BatchNorm3d(3)]),
    "batchnorm2d-eval-noaffine": classifier(5, lambda: [nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, affine=False)]),
    # Conv3d
    "conv3d-k3-p1": classifier(5, lambda: [nn.Conv3d(2, 3, 3, padding=1)]),
    "conv3d-k3-s2-d2-g2": classifier(5, lambda: [nn.Conv3d(4, 6, 3, stride=2, dilation=2, groups=2)]),
    "conv3d-k2x3x1-s1x2x1": classifier(5, lambda: [nn.Conv3d(2, 3, (2, 3, 1), stride=(1, 2, 1))]),
    "conv3d-same-k2": classifier(5, lambda: [nn.Conv3d(2, 3, 2, padding="same")]),
    "conv3d-valid-nobias": classifier(5, lambda: [nn.Conv3d(2, 3, 3, padding="valid", bias=False)]),
    "conv3d-reflect-p1": classifier(5, lambda: [nn.Conv3d(2, 2, 3, padding=1, padding_mode="reflect")]),
    "conv3d-circular-p1": classifier(5, lambda: [nn.Conv3d(2, 2, 3, padding=1, padding_mode="circular")]),
    # ConvTranspose1d/2d/3d
    "convtranspose1d-k3": classifier(5, lambda: [nn.ConvTranspose1d(3, 4, 3)]),
    "convtranspose1d-k3-s2-p1-op1": classifier(
        5, lambda: [nn.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1)]),
    "convtranspose1d-k3-s2-d2-g3-op1": classifier(
        5, lambda: [nn.ConvTranspose1d(6, 3, 3, stride=2, output_padding=1, dilation=2, groups=3)]),
    "convtranspose2d-k3-s2-p1-op1": classifier(
        5, lambda: [nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1)]),
    "convtranspose2d-k2x3-s2x1-d1x2-g2": classifier(
        5, lambda: [nn.ConvTranspose2d(4, 6, (2, 3), stride=(2, 1), dilation=(1, 2), groups=2)]),
    "convtranspose2d-nobias": classifier(5, lambda: [nn.ConvTranspose2d(2, 3, 2, bias=False)]),
    "convtranspose2d-op-below-dilation": classifier(
        5, lambda: [nn.ConvTranspose2d(2, 2, 2, stride=1, output_padding=1, dilation=2)]),
    "convtranspose3d-k3-s2-p1-op1": classifier(
        5, lambda: [nn.ConvTranspose3d(2, 2, 3, stride=2, padding=1, output_padding=1)]),
    "convtranspose3d-k2-d2-g2-nobias": classifier(
        5, lambda: [nn.ConvTranspose3d(2, 4, 2, dilation=2, groups=2, bias=False)]),
    # PReLU
    "prelu-single": classifier(5, lambda: [nn.Linear(6, 5), nn.PReLU(1)]),
    "prelu-per-channel": classifier(5, lambda: [nn.Conv2d(3, 4, 3), nn.PReLU(4)]),
    "prelu-per-feature": classifier(5, lambda: [nn.Linear(6, 5), nn.PReLU(5)]),
    # Custom modules without a rule (the per-sample rerun fallback)
    "custom-gainshift-fallback": classifier(4, lambda: [nn.Linear(6, 5), GainShiftTanh(5)]),
    "custom-gainshift-fallback-tokens": classifier(3, lambda: [GainShiftTanh(4), nn.Linear(4, 4)]),
    "custom-scaled-linear-fallback": classifier(4, lambda: [nn.Linear(6, 6), nn.Tanh(), ScaledLinear(6, 5)]),
    # Embedding
    "embedding-pad0": classifier(3, lambda: [nn.Embedding(20, 4, padding_idx=0)], tokens=True),
    "embedding-nopad": classifier(4, lambda: [nn.Embedding(15, 3)], tokens=True),
    # Structure
    "shared-linear-twice": lambda s: SharedTwice(6, 3),
    "nested-sequential": lambda s: nested(5, 4),
    "unused-branch": lambda s: UnusedBranch(5, 4),
    "frozen-first-layer": plain(lambda: [nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)]),
    "frozen-weight-bias-only": classifier(3, lambda: [nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4)]),
    # Losses
    "nll-logsoftmax": plain(lambda: [nn.Linear(6, 5), nn.LogSoftmax(1)]),
    "mse-multi-output": plain(lambda: [nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)]),
    "l1-multi-output": plain(lambda: [nn.Linear(5, 3)]),
    "custom-softmargin": plain(lambda: [nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)]),
    "dropout-eval": classifier(5, lambda: [nn.Linear(8, 8), nn.Dropout(0.5), nn.ReLU()]),
}


# ---------------------------------------------------------------------------------------------------------------
# Losses: LossFunction.cs. Built-in losses take the declared reduction; custom losses give per-sample losses [N].
# ---------------------------------------------------------------------------------------------------------------

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
        return lambda output, target: per_sample(output, target).sum() if reduction == "sum" else per_sample(output, target).mean()
    raise BadInput("%s loss '%s' is not known to the PyTorch reference; built-in: %s; custom: %s"
                   % ("custom" if custom else "built-in", name, ", ".join(sorted(BUILT_IN_LOSSES)), ", ".join(sorted(CUSTOM_LOSSES))))


# ---------------------------------------------------------------------------------------------------------------
# The exchange
# ---------------------------------------------------------------------------------------------------------------

DTYPES = {"float32": torch.float32, "float64": torch.float64}
NUMPY_KINDS = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "bool": np.bool_}


class Problem:
    """A request made concrete: the PyTorch model with the exchanged weights, the batch, the loss."""

    def __init__(self, folder):
        self.folder = folder
        path = os.path.join(folder, "request.json")
        try:
            with open(path, "r", encoding="utf-8") as f:
                request = json.load(f)
        except (OSError, ValueError) as e:
            raise BadInput("cannot read %s: %s" % (path, e))
        if request.get("format") != FORMAT:
            raise BadInput("request format %r, this script reads format %d" % (request.get("format"), FORMAT))
        self.request = request
        self.problem = request["problem"]
        self.architecture = request["architecture"]
        if request["dtype"] not in DTYPES:
            raise BadInput("dtype '%s' is not float32 or float64" % request["dtype"])
        self.dtype_name = request["dtype"]
        self.dtype = DTYPES[self.dtype_name]
        self.loss_name = request["loss"]["name"]
        self.reduction = request["loss"]["reduction"]
        self.loss = make_loss(self.loss_name, self.reduction, bool(request["loss"]["custom"]))
        self.inputs = self.load(request["inputs"], "inputs")
        self.targets = self.load(request["targets"], "targets")
        self.batch_size = int(request["batch_size"])
        if self.inputs.dim() == 0 or self.inputs.shape[0] != self.batch_size or self.targets.shape[0] != self.batch_size:
            raise BadInput("batch size %d, but inputs %s and targets %s"
                           % (self.batch_size, list(self.inputs.shape), list(self.targets.shape)))
        self.model = self.build()
        self.trainable = [p["name"] for p in request["parameters"] if p["requires_grad"]]
        if not self.trainable:
            raise BadInput("no parameter has requires_grad = true")

    def load(self, entry, what):
        path = os.path.join(self.folder, entry["file"])
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise BadInput("cannot read %s (%s): %s" % (what, path, e))
        if list(array.shape) != list(entry["shape"]):
            raise BadInput("%s: %s holds shape %s, the manifest says %s" % (what, entry["file"], list(array.shape), entry["shape"]))
        if entry["dtype"] not in NUMPY_KINDS or array.dtype != NUMPY_KINDS[entry["dtype"]]:
            raise BadInput("%s: %s holds %s, the manifest says %s" % (what, entry["file"], array.dtype, entry["dtype"]))
        # np.array(order="C"), not np.ascontiguousarray, which turns a 0-d array into a 1-d one.
        return torch.from_numpy(np.array(array, order="C", copy=True))

    def build(self):
        if self.architecture not in ARCHITECTURES:
            raise BadInput("architecture '%s' is not known to the PyTorch reference (tools/pytorch_reference.py); known: %s"
                           % (self.architecture, ", ".join(sorted(ARCHITECTURES))))
        model = ARCHITECTURES[self.architecture](tuple(self.inputs.shape[1:])).to(self.dtype)
        self.load_state(model)
        model.eval()
        for path in self.request["training_modules"]:
            model.get_submodule(path).training = True
        return model

    def load_state(self, model):
        """Strict by name and shape, parameters and buffers; every difference is named at once."""
        problems = []
        for kind, ours, theirs in (
                ("parameter", dict(model.named_parameters()), self.request["parameters"]),
                ("buffer", dict(model.named_buffers()), self.request["buffers"])):
            sent = {entry["name"]: entry for entry in theirs}
            for name in ours:
                if name not in sent:
                    problems.append("%s '%s' (shape %s) of PyTorch's '%s' is missing from the exchange"
                                    % (kind, name, list(ours[name].shape), self.architecture))
            for name, entry in sent.items():
                if name not in ours:
                    problems.append("%s '%s' (shape %s) of the exchange is not in PyTorch's '%s'"
                                    % (kind, name, entry["shape"], self.architecture))
                elif list(ours[name].shape) != list(entry["shape"]):
                    problems.append("%s '%s': shape %s in PyTorch's '%s', %s in the exchange"
                                    % (kind, name, list(ours[name].shape), self.architecture, entry["shape"]))
        if problems:
            raise BadInput("the exchanged model does not match PyTorch's '%s' (PyTorch %s): %s"
                           % (self.architecture, torch.__version__, "; ".join(problems)))
        parameters, buffers = dict(model.named_parameters()), dict(model.named_buffers())
        with torch.no_grad():
            for entry in self.request["parameters"]:
                value = self.load(entry, "parameter '%s'" % entry["name"])
                if value.dtype != self.dtype:
                    raise BadInput("parameter '%s' is %s but the run's dtype is %s" % (entry["name"], value.dtype, self.dtype))
                parameters[entry["name"]].copy_(value)
                parameters[entry["name"]].requires_grad_(bool(entry["requires_grad"]))
            for entry in self.request["buffers"]:
                value = self.load(entry, "buffer '%s'" % entry["name"])
                if value.dtype != buffers[entry["name"]].dtype:
                    raise BadInput("buffer '%s' is %s in the exchange, %s in PyTorch"
                                   % (entry["name"], value.dtype, buffers[entry["name"]].dtype))
                buffers[entry["name"]].copy_(value)

    def converted(self, dtype):
        """A copy of the model and the batch in `dtype` (floating tensors only; token ids and classes stay)."""
        model = copy.deepcopy(self.model).to(dtype)
        convert = lambda t: t.to(dtype) if t.is_floating_point() else t
        return model, convert(self.inputs), convert(self.targets)


# ---------------------------------------------------------------------------------------------------------------
# Per-sample gradient methods: each returns {name: [N, ...]} for the trainable parameters.
# ---------------------------------------------------------------------------------------------------------------

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

    gradients = VMAP.vmap(VMAP.grad(sample_loss), in_dims=(None, 0, 0))(trainable, x, y)
    return {n: gradients[n] for n in names}


def _instance_norm_with_running_stats():
    norm = nn.InstanceNorm1d(2, affine=True, track_running_stats=True).double().eval()
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor([0.5, -0.25]))
        norm.running_var.copy_(torch.tensor([2.0, 0.5]))
    return norm


# Known ways ExpandedWeights answers wrongly instead of refusing: (does a module of the model have it, a tiny module
# with it, an input for that module, what goes wrong). A model with such a module gets ExpandedWeights reported as
# unsupported, but only when the probe shows that this PyTorch still has the defect.
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
        actual = per_sample_expanded_weights(module, x, x, loss, names, "sum", probe=False)
        if any(not torch.allclose(actual[n], expected[n]) for n in names):
            return "PyTorch %s's ExpandedWeights %s (a probe on a tiny module disagrees with autograd)" % (torch.__version__, what)
    return None


def per_sample_expanded_weights(model, x, y, loss, names, reduction, probe=True):
    """ExpandedWeights on the declared batch loss; loss_reduction equal to the declared reduction (see the top).
    Unsupported when this PyTorch lacks it, rejects the model, or has a known defect for one of its modules."""
    call_for_per_sample_grads, problem = expanded_weights()
    if problem:
        raise Unsupported(problem)
    defect = expanded_weights_defect(model) if probe else None
    if defect:
        raise Unsupported(defect)
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
            results[n] = torch.zeros((x.shape[0],) + tuple(parameters[n].shape), dtype=parameters[n].dtype) if g is None else g.detach()
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


def compute_gradients(problem, out_folder):
    methods = []
    runs = [
        ("pytorch-loop-float64", torch.float64, lambda m, x, y: per_sample_loop(m, x, y, problem.loss, problem.trainable)),
        ("pytorch-vmap", problem.dtype, lambda m, x, y: per_sample_vmap(m, x, y, problem.loss, problem.trainable)),
        ("pytorch-expanded-weights", problem.dtype,
         lambda m, x, y: per_sample_expanded_weights(m, x, y, problem.loss, problem.trainable, problem.reduction)),
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
        files = []
        for k, n in enumerate(problem.trainable):
            g = gradients[n].detach().to(dtype).contiguous()
            file = "m%d-p%03d.npy" % (index, k)
            np.save(os.path.join(out_folder, file), g.numpy())
            files.append({"name": n, "file": file, "shape": list(g.shape)})
        entry.update(status="ok", gradients=files)
        methods.append(entry)
    return methods


def repeat_seconds(run, repeats, warmup):
    for _ in range(warmup):
        run()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return seconds


def time_methods(problem, repeats, warmup):
    model, x, y = problem.converted(problem.dtype)
    loss, names = problem.loss, problem.trainable
    runs = [
        ("pytorch-batch-backward", lambda: batch_backward(model, x, y, loss, names)),
        ("pytorch-vmap", lambda: per_sample_vmap(model, x, y, loss, names)),
        ("pytorch-expanded-weights", lambda: per_sample_expanded_weights(model, x, y, loss, names, problem.reduction)),
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


def main(argv):
    parser = argparse.ArgumentParser(prog="pytorch_reference.py", description=__doc__.split("\n\n")[0])
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
    args = parser.parse_args(argv)

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
    out_folder = os.path.join(args.folder, "result")
    os.makedirs(out_folder, exist_ok=True)
    result = {"format": FORMAT, "problem": problem.problem, "architecture": problem.architecture, "versions": versions(),
              "threads": torch.get_num_threads()}
    print("%s %s: PyTorch %s (vmap: %s), numpy %s, Python %s, %d thread(s)"
          % (args.command, problem.problem, torch.__version__, VMAP.name or VMAP.problem, np.__version__,
             platform.python_version(), torch.get_num_threads()))
    if args.command == "gradients":
        result["methods"] = compute_gradients(problem, out_folder)
    else:
        if args.repeats < 1 or args.warmup < 0:
            raise BadInput("--repeats must be at least 1 and --warmup at least 0")
        result.update(repeats=args.repeats, warmup=args.warmup, methods=time_methods(problem, args.repeats, args.warmup))
    with open(os.path.join(out_folder, "result.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BadInput as e:
        sys.stderr.write("pytorch_reference: %s\n" % e)
        sys.exit(EXIT_BAD_INPUT)
