"""The zoo's models (src/PerSampleGrads/Zoo/ZooModels.cs, ModelZoo.cs). Parameter names must equal the C# side's:
the weights are loaded strictly by name and shape, so any drift shows up as a named error, not as a wrong answer."""

import torch
import torch.nn.functional as F
from torch import nn


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


class LstmClassifier(nn.Module):
    """Zoo 'lstm' (ZooModels.cs, LstmClassifier): embedding, LSTM (batch-first), head on the last hidden state h_n.
    TorchSharp's LSTM names its parameters as PyTorch does (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0), so
    the weights load by name unchanged."""

    def __init__(self, vocabulary=50, width=16, hidden=32, classes=5):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, width, padding_idx=0)
        self.lstm = nn.LSTM(width, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, tokens):
        _, (h, _) = self.lstm(self.embedding(tokens))
        return self.head(h[-1])


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
            blocks = [BasicBlock(inplanes, planes, stride, norm), BasicBlock(planes, planes, 1, norm)]
            self.add_module("layer%d" % index, nn.Sequential(*blocks))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TransformerEncoderClassifier(nn.Module):
    """Zoo 'transformer' (ZooModels.cs, TransformerEncoderClassifier): token and position embeddings, one post-norm
    encoder block of separate layers (MultiheadAttention on the sequence-first layout, LayerNorm, ReLU feed-forward,
    LayerNorm), mean over tokens, head. The same parameter names as TorchSharp's modules (in_proj_weight, ...)."""

    def __init__(self, vocabulary=50, length=12, width=16, heads=2, feed_forward=32, classes=5):
        super().__init__()
        self.tokens = nn.Embedding(vocabulary, width, padding_idx=0)
        self.positions = nn.Embedding(length, width)
        self.attention = nn.MultiheadAttention(width, heads)
        self.norm1 = nn.LayerNorm(width)
        self.feedforward1 = nn.Linear(width, feed_forward)
        self.feedforward2 = nn.Linear(feed_forward, width)
        self.norm2 = nn.LayerNorm(width)
        self.head = nn.Linear(width, classes)

    def forward(self, ids):
        x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1], device=ids.device))
        s = x.transpose(0, 1)
        attended, _ = self.attention(s, s, s, need_weights=False)
        h = self.norm1(x + attended.transpose(0, 1))
        h = self.norm2(h + self.feedforward2(F.relu(self.feedforward1(h))))
        return self.head(h.mean(1))


def group_norm_min32(channels):
    """The zoo's norm layer: GroupNorm(min(32, C), C)."""
    return nn.GroupNorm(min(32, channels), channels)


# Zoo name -> builder(one sample's input shape), as in ModelZoo.cs.
ZOO = {
    "small-cnn": lambda sample_shape: SmallCnn(),
    "mlp": lambda sample_shape: nn.Sequential(
        nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10)),
    "sequence": lambda sample_shape: TokenClassifier(),
    "lstm": lambda sample_shape: LstmClassifier(),
    "transformer": lambda sample_shape: TransformerEncoderClassifier(),
    "resnet18-gn": lambda sample_shape: ResNet18(10, group_norm_min32),
}
