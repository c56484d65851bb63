"""The catalogue's cases by architecture name (src/PerSampleGrads/Cases: CaseCatalogue.cs, CaseModels.cs,
CustomModules.cs). Parameter names must equal the C# side's: the weights are loaded strictly by name and shape."""

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .sequence_cases import recurrent, sequence_cases


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


class FeatureGain(nn.Module):
    """CustomModules.cs: x * gain over the last dimension, one raw parameter and nothing else."""

    def __init__(self, features):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(features))

    def forward(self, x):
        return x * self.gain


class GainTanhWithSpare(nn.Module):
    """CustomModules.cs: tanh(x * gain) with a second raw parameter, spare, that the forward never uses."""

    def __init__(self, features):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(features))
        self.spare = nn.Parameter(torch.zeros(features))

    def forward(self, x):
        return torch.tanh(x * self.gain)


class ScaledLinear(nn.Module):
    """CustomModules.cs: linear(x) * scale, a raw parameter beside a child with a rule."""

    def __init__(self, inputs, outputs):
        super().__init__()
        self.linear = nn.Linear(inputs, outputs)
        self.scale = nn.Parameter(torch.ones(outputs))

    def forward(self, x):
        return self.linear(x) * self.scale


class ListedGainsTanh(nn.Module):
    """CustomModules.cs: tanh(x * gains[0] + gains[1]), the raw parameters in a ParameterList."""

    def __init__(self, features):
        super().__init__()
        self.gains = nn.ParameterList([nn.Parameter(torch.ones(features)), nn.Parameter(torch.zeros(features))])

    def forward(self, x):
        return torch.tanh(x * self.gains[0] + self.gains[1])


def nested(width, classes):
    """Case 'nested-sequential':
    Sequential(outer=Sequential(Linear, ReLU), deep=Sequential(inner=Sequential(linear)))."""
    outer = nn.Sequential(nn.Linear(width, width), nn.ReLU())
    inner = nn.Sequential(OrderedDict([("linear", nn.Linear(width, classes))]))
    return nn.Sequential(OrderedDict([("outer", outer), ("deep", nn.Sequential(OrderedDict([("inner", inner)])))]))


def layer_norm_without_bias(features):
    """LayerNorm(bias: false): torch 1.13's LayerNorm has no bias argument, so the bias is removed."""
    norm = nn.LayerNorm(features)
    norm.bias = None
    return norm


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
                # In eval mode: BatchNorm in training mode refuses one sample, and would update its statistics.
                training = layer.training
                probe = layer.eval()(probe)
                layer.train(training)
        return nn.Sequential(*body, nn.Flatten(), nn.Linear(probe[0].numel(), classes))

    return build


# Architecture name -> builder(one sample's input shape): the request names a catalogue case by its architecture
# (GradientCase.Architecture, its id without batch and loss: 'conv2d-k3-s2-d2-g2'). Each entry restates
# CaseCatalogue.cs's definition; frozen parameters come from the request's requires_grad flags.
CASES = {
    # Linear
    "linear-2d": plain(lambda: [nn.Linear(6, 4)]),
    "linear-3d": plain(lambda: [nn.Linear(5, 3)]),
    "linear-4d": plain(lambda: [nn.Linear(5, 4)]),
    "linear-3d-one-output": plain(lambda: [nn.Linear(5, 1)]),
    "linear-nobias": classifier(5, lambda: [nn.Linear(9, 6, bias=False), nn.Tanh()]),
    # Conv1d
    "conv1d-k3-p1": classifier(5, lambda: [nn.Conv1d(3, 5, 3, padding=1)]),
    "conv1d-k3-s2-d2-g3": classifier(5, lambda: [nn.Conv1d(6, 9, 3, stride=2, dilation=2, groups=3)]),
    "conv1d-same-k4": classifier(5, lambda: [nn.Conv1d(2, 4, 4, padding="same")]),
    "conv1d-valid-nobias": classifier(5, lambda: [nn.Conv1d(3, 4, 3, padding="valid", bias=False)]),
    "conv1d-reflect-p2": classifier(5, lambda: [nn.Conv1d(2, 3, 3, padding=2, padding_mode="reflect")]),
    # Conv2d
    "conv2d-k3-s2-d2-g2": classifier(5, lambda: [nn.Conv2d(4, 6, 3, stride=2, dilation=2, groups=2)]),
    "conv2d-g2-grouped-route-22x14": classifier(5, lambda: [nn.Conv2d(4, 6, 3, groups=2)]),
    "conv2d-two-positions": classifier(5, lambda: [nn.Conv2d(3, 4, 3)]),
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
    "prelu-two-channels": classifier(5, lambda: [nn.Conv2d(3, 2, 3), nn.PReLU(2)]),
    # Custom modules without a rule (the per-sample rerun fallback)
    "custom-gainshift-fallback": classifier(5, lambda: [nn.Linear(6, 5), GainShiftTanh(5)]),
    "custom-one-gain-fallback": classifier(5, lambda: [nn.Linear(6, 5), FeatureGain(5), nn.Tanh()]),
    "custom-one-gain-fallback-tokens": classifier(5, lambda: [FeatureGain(4), nn.Linear(4, 4)]),
    "custom-two-modules-fallback": classifier(5, lambda: [FeatureGain(6), nn.Linear(6, 5), ListedGainsTanh(5)]),
    "custom-unused-parameter-fallback": classifier(5, lambda: [nn.Linear(6, 5), GainTanhWithSpare(5)]),
    "custom-gainshift-fallback-tokens": classifier(5, lambda: [GainShiftTanh(4), nn.Linear(4, 4)]),
    "custom-scaled-linear-fallback": classifier(5, lambda: [nn.Linear(6, 6), nn.Tanh(), ScaledLinear(6, 5)]),
    "custom-listed-gains-fallback": classifier(5, lambda: [nn.Linear(6, 5), ListedGainsTanh(5)]),
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
    # One case per option value (CaseCatalogue.OptionCases); training mode and running statistics travel in the request.
    "conv2d-k3x2-s2x1-p1x2-d1x2": classifier(
        5, lambda: [nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2))]),
    "conv2d-same-k4x3-d1x2": classifier(5, lambda: [nn.Conv2d(2, 3, (4, 3), padding="same", dilation=(1, 2))]),
    "conv3d-k3x2x2-s1x2x1-p0x1x2-d2x1x1": classifier(
        5, lambda: [nn.Conv3d(2, 3, (3, 2, 2), stride=(1, 2, 1), padding=(0, 1, 2), dilation=(2, 1, 1))]),
    "conv3d-same-k3x2x1-d1x1x2": classifier(
        5, lambda: [nn.Conv3d(2, 2, (3, 2, 1), padding="same", dilation=(1, 1, 2))]),
    "convtranspose2d-k3x2-s2x3-p1x0-op1": classifier(
        5, lambda: [nn.ConvTranspose2d(3, 2, (3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 1))]),
    "convtranspose3d-k2x3x1-s2x3x2-p0x1x0-op1-d1x1x2": classifier(
        5, lambda: [nn.ConvTranspose3d(2, 2, (2, 3, 1), stride=(2, 3, 2), padding=(0, 1, 0), output_padding=1,
                                       dilation=(1, 1, 2))]),
    "conv1d-replicate-p2": classifier(5, lambda: [nn.Conv1d(2, 3, 3, padding=2, padding_mode="replicate")]),
    "conv1d-circular-p1-s2": classifier(5, lambda: [nn.Conv1d(2, 3, 3, stride=2, padding=1, padding_mode="circular")]),
    "conv1d-same-k4-replicate": classifier(5, lambda: [nn.Conv1d(2, 3, 4, padding="same", padding_mode="replicate")]),
    "conv2d-same-k3-reflect": classifier(5, lambda: [nn.Conv2d(2, 3, 3, padding="same", padding_mode="reflect")]),
    "conv2d-replicate-p1x2": classifier(5, lambda: [nn.Conv2d(2, 3, 3, padding=(1, 2), padding_mode="replicate")]),
    "conv2d-reflect-p2x1-d2": classifier(
        5, lambda: [nn.Conv2d(2, 3, (2, 3), padding=(2, 1), dilation=(2, 1), padding_mode="reflect")]),
    "conv2d-circular-p1x2-g2": classifier(
        5, lambda: [nn.Conv2d(4, 4, 3, padding=(1, 2), groups=2, padding_mode="circular")]),
    "conv3d-replicate-p1": classifier(5, lambda: [nn.Conv3d(2, 2, 3, padding=1, padding_mode="replicate")]),
    "conv3d-reflect-p1x0x1": classifier(5, lambda: [nn.Conv3d(2, 2, 3, padding=(1, 0, 1), padding_mode="reflect")]),
    "instancenorm1d-affine-running-stats-train": classifier(
        5, lambda: [nn.Conv1d(3, 4, 3), nn.InstanceNorm1d(4, affine=True, track_running_stats=True)]),
    "instancenorm2d-affine-running-stats-train": classifier(
        5, lambda: [nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4, affine=True, track_running_stats=True), nn.ReLU()]),
    "instancenorm3d-affine-running-stats-train": classifier(
        5, lambda: [nn.Conv3d(2, 3, 2), nn.InstanceNorm3d(3, affine=True, track_running_stats=True)]),
    "instancenorm1d-affine-running-stats-eval-random": classifier(
        5, lambda: [nn.Conv1d(3, 4, 3), nn.InstanceNorm1d(4, affine=True, track_running_stats=True)]),
    "instancenorm2d-affine-running-stats-eval-random": classifier(
        5, lambda: [nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4, affine=True, track_running_stats=True), nn.ReLU()]),
    "instancenorm2d-affine-train": classifier(
        5, lambda: [nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4, affine=True), nn.ReLU()]),
    "instancenorm1d-noaffine-running-stats-train": classifier(
        5, lambda: [nn.Conv1d(3, 4, 3), nn.InstanceNorm1d(4, track_running_stats=True), nn.Tanh()]),
    "instancenorm2d-noaffine-running-stats-eval-random": classifier(
        5, lambda: [nn.Conv2d(3, 4, 3), nn.InstanceNorm2d(4, track_running_stats=True), nn.Tanh()]),
    "instancenorm1d-noaffine": classifier(5, lambda: [nn.Conv1d(3, 4, 3), nn.InstanceNorm1d(4), nn.Tanh()]),
    "groupnorm-noaffine": classifier(5, lambda: [nn.Conv2d(4, 6, 3), nn.GroupNorm(3, 6, affine=False), nn.Tanh()]),
    "groupnorm-g2-train": classifier(5, lambda: [nn.Conv2d(4, 6, 3), nn.GroupNorm(2, 6), nn.Tanh()]),
    "layernorm-noaffine": plain(
        lambda: [nn.Linear(8, 8), nn.Tanh(), nn.LayerNorm(8, elementwise_affine=False), nn.Linear(8, 3)]),
    "layernorm-nobias": plain(lambda: [nn.Linear(8, 8), nn.Tanh(), layer_norm_without_bias(8), nn.Linear(8, 3)]),
    "layernorm-2d-train": classifier(5, lambda: [nn.LayerNorm([4, 5])]),
    "batchnorm1d-eval-noaffine": classifier(5, lambda: [nn.Linear(6, 5), nn.BatchNorm1d(5, affine=False), nn.Tanh()]),
    "batchnorm3d-eval-noaffine": classifier(5, lambda: [nn.Conv3d(2, 3, 2), nn.BatchNorm3d(3, affine=False)]),
    "ce-positions-conv1d": plain(lambda: [nn.Conv1d(3, 4, 3)]),
    "nll-positions-conv1d": plain(lambda: [nn.Conv1d(3, 4, 3), nn.LogSoftmax(1)]),
    "ce-positions-conv2d": plain(lambda: [nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4)]),
    # Recurrent layers (CaseCatalogue.RecurrentCases; training mode travels in the request)
    "lstm-l1": recurrent("lstm"),
    "lstm-l2-h0-final": recurrent("lstm", layers=2, initial_state=True, read_final_state=True),
    "lstm-bi-batchfirst": recurrent("lstm", bidirectional=True, batch_first=True),
    "lstm-l2-bi-nobias-final": recurrent("lstm", layers=2, bidirectional=True, bias=False, read_final_state=True),
    "lstm-l2-train": recurrent("lstm", layers=2, batch_first=True),
    "gru-l2-bi-h0": recurrent("gru", layers=2, bidirectional=True, initial_state=True),
    "lstm-l2-bi-h0": recurrent("lstm", layers=2, bidirectional=True, initial_state=True),
    "lstm-twice-h0": recurrent("lstm", initial_state=True, twice=True),
    "gru-l2-twice-batchfirst": recurrent("gru", layers=2, batch_first=True, twice=True),
    "gru-batchfirst-nobias-final": recurrent("gru", batch_first=True, bias=False, read_final_state=True),
    "gru-bi-frozen-weights": recurrent("gru", bidirectional=True),
    "lstm-frozen-biases": recurrent("lstm"),
    "lstm-l2-top-trained": recurrent("lstm", layers=2),
    "lstm-two-steps": recurrent("lstm"),
    "rnn-tanh-l2-final": recurrent("rnn-tanh", layers=2, read_final_state=True),
    "rnn-relu-bi-batchfirst-h0": recurrent("rnn-relu", bidirectional=True, batch_first=True, initial_state=True),
    "rnn-relu-nobias": recurrent("rnn-relu", bias=False),
    "lstmcell-h0-final": recurrent("lstm", cell=True, initial_state=True, read_final_state=True),
    "lstmcell-nobias": recurrent("lstm", cell=True, bias=False),
    "grucell": recurrent("gru", cell=True),
    "grucell-h0-nobias": recurrent("gru", cell=True, initial_state=True, bias=False),
    "rnncell-tanh-h0": recurrent("rnn-tanh", cell=True, initial_state=True),
    "rnncell-relu": recurrent("rnn-relu", cell=True),
}

CASES.update(sequence_cases())
