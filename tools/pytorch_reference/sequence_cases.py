"""The catalogue's sequence cases by architecture name (src/PerSampleGrads/Cases: RecurrentModels.cs,
SequenceModels.cs, CaseCatalogue.RecurrentCases and SequenceCases). Parameter names must equal the C# side's: the
weights are loaded strictly by name and shape."""

import torch
from torch import nn


class RecurrentClassifier(nn.Module):
    """RecurrentModels.cs: embed = Linear(F->I) per step, a recurrent layer (sequence-first unless batch_first; a cell
    is called once per step from zeros or h0), h0 (and c0) = tanh(initial(x[:, 0])) when asked, head = Linear on the
    last step's output (plus, twice, the last output of a second run on the reversed sequence), concatenated with
    every final state when asked. The names (weight_ih_l0, ...) are
    PyTorch's own, so nothing is mapped."""

    def __init__(self, kind, cell=False, layers=1, bidirectional=False, batch_first=False, bias=True,
                 initial_state=False, read_final_state=False, twice=False, features=3, input_size=4, hidden=5,
                 classes=3):
        super().__init__()
        self.kind, self.cell, self.batch_first = kind, cell, batch_first
        self.initial_state, self.read_final_state, self.hidden = initial_state, read_final_state, hidden
        self.twice = twice
        self.embed = nn.Linear(features, input_size)
        if cell:
            self.recurrent = {"lstm": lambda: nn.LSTMCell(input_size, hidden, bias),
                              "gru": lambda: nn.GRUCell(input_size, hidden, bias),
                              "rnn-tanh": lambda: nn.RNNCell(input_size, hidden, bias, "tanh"),
                              "rnn-relu": lambda: nn.RNNCell(input_size, hidden, bias, "relu")}[kind]()
        else:
            options = dict(num_layers=layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional)
            self.recurrent = {"lstm": lambda: nn.LSTM(input_size, hidden, **options),
                              "gru": lambda: nn.GRU(input_size, hidden, **options),
                              "rnn-tanh": lambda: nn.RNN(input_size, hidden, nonlinearity="tanh", **options),
                              "rnn-relu": lambda: nn.RNN(input_size, hidden, nonlinearity="relu", **options)}[kind]()
        directions = 2 if bidirectional else 1
        self.states = 2 if kind == "lstm" else 1
        count = self.states * (1 if cell else layers * directions)
        if initial_state:
            self.initial = nn.Linear(features, count * hidden)
        self.head = nn.Linear(directions * hidden + (count * hidden if read_final_state else 0), classes)

    def forward(self, x):
        n = x.shape[0]
        e = self.embed(x)
        initial = None
        if self.initial_state:
            initial = self.initial(x[:, 0]).tanh().chunk(self.states, 1)
            if not self.cell:
                initial = [s.reshape(n, -1, self.hidden).transpose(0, 1) for s in initial]
        if self.cell:
            h = initial[0] if initial else torch.zeros(n, self.hidden, dtype=x.dtype)
            c = initial[1] if initial and self.states == 2 else torch.zeros_like(h)
            for t in range(e.shape[1]):
                if self.kind == "lstm":
                    h, c = self.recurrent(e[:, t], (h, c))
                else:
                    h = self.recurrent(e[:, t], h)
            last, finals = h, [h, c] if self.kind == "lstm" else [h]
        else:
            sequence = e if self.batch_first else e.transpose(0, 1)
            state = None if initial is None else (tuple(initial) if self.kind == "lstm" else initial[0])
            output, final = self.recurrent(sequence, state)
            finals = list(final) if self.kind == "lstm" else [final]
            last = output[:, -1] if self.batch_first else output[-1]
            if self.twice:
                again, _ = self.recurrent(sequence.flip(1 if self.batch_first else 0))
                last = last + (again[:, -1] if self.batch_first else again[-1])
            finals = [f.transpose(0, 1).reshape(n, -1) for f in finals]
        features = [last] + (finals if self.read_final_state else [])
        return self.head(torch.cat(features, 1))


def recurrent(kind, **options):
    """CaseCatalogue.RecurrentCases: T = 4 steps (2 for lstm-two-steps; from the request) of F = 3 features, I = 4,
    H = 5, 3 classes."""
    return lambda sample_shape: RecurrentClassifier(kind, **options)


class BagClassifier(nn.Module):
    """SequenceModels.cs BagClassifier: ids [N, bag] -> EmbeddingBag (2-d rows, or 1-d ids with offsets; optional
    per-sample weights 0.5 + (id mod 3) / 2) -> tanh -> Linear head. Names as TorchSharp's: bag.weight, head.*."""

    def __init__(self, mode, flat, weighted, padding=None, last_offset=False):
        super().__init__()
        self.bag = nn.EmbeddingBag(12, 5, mode=mode, padding_idx=padding, include_last_offset=last_offset)
        self.head = nn.Linear(5, 3)
        self.flat, self.weighted, self.last_offset = flat, weighted, last_offset

    def forward(self, ids):
        weights = (ids % 3).to(self.bag.weight.dtype) / 2 + 0.5 if self.weighted else None
        if self.flat:
            bags = ids.shape[0] + 1 if self.last_offset else ids.shape[0]
            offsets = torch.arange(bags, device=ids.device) * ids.shape[1]
            pooled = self.bag(ids.reshape(-1), offsets, None if weights is None else weights.reshape(-1))
        else:
            pooled = self.bag(ids, None, weights)
        return self.head(torch.tanh(pooled))


class AttentionClassifier(nn.Module):
    """SequenceModels.cs AttentionClassifier: ids [N, T] -> Embedding -> [T, N, E] -> MultiheadAttention (key padding
    ids == 0 except position 0; additive causal mask; weights fed to the head; keys and values from a second
    embedding) -> mean over positions -> Linear head. Same parameter names as TorchSharp (in_proj_weight, ...)."""

    def __init__(self, heads=2, bias=True, key_padding=False, causal=False, use_weights=False, cross=False,
                 bias_kv=False, zero_attn=False, kv_width=None, distinct_values=False, weights_only=False):
        super().__init__()
        self.embedding = nn.Embedding(10, 8)
        self.memory = nn.Embedding(10, kv_width or 8) if cross else None
        self.attention = nn.MultiheadAttention(8, heads, bias=bias, add_bias_kv=bias_kv, add_zero_attn=zero_attn,
                                               kdim=kv_width, vdim=kv_width)
        keys = 5 + (1 if bias_kv else 0) + (1 if zero_attn else 0)
        self.head = nn.Linear((0 if weights_only else 8) + (5 * keys if use_weights else 0), 3)
        self.key_padding, self.causal, self.use_weights = key_padding, causal, use_weights
        self.distinct_values, self.weights_only = distinct_values, weights_only

    def forward(self, ids):
        n, t = ids.shape
        query = self.embedding(ids).transpose(0, 1)
        keys = query if self.memory is None else self.memory(ids).transpose(0, 1)
        padding = None
        if self.key_padding:
            padding = ids.eq(0)
            padding[:, 0] = False
        causal = torch.full((t, t), float("-inf"), dtype=query.dtype).triu(1) if self.causal else None
        values = torch.tanh(keys) if self.distinct_values else keys
        output, weights = self.attention(query, keys, values, key_padding_mask=padding,
                                         need_weights=self.use_weights, attn_mask=causal)
        if self.weights_only:
            return self.head(weights.reshape(n, -1))
        pooled = output.mean(0)
        if self.use_weights:
            pooled = torch.cat([pooled, weights.reshape(n, -1)], 1)
        return self.head(pooled)


class TransformerClassifier(nn.Module):
    """SequenceModels.cs TransformerClassifier: ids [N, T] -> Embedding -> [T, N, E] -> TransformerEncoderLayer (or
    TransformerDecoderLayer attending to a second embedding; masked: additive causal target mask, ids == 0 except
    position 0 as the memory's key padding mask), dropout 0 -> mean over positions -> Linear head."""

    def __init__(self, decoder, activation, masked=False, every_mask=False):
        super().__init__()
        self.masked, self.every_mask = masked, every_mask
        self.embedding = nn.Embedding(10, 8)
        if decoder:
            self.memory = nn.Embedding(10, 8)
            self.decoder = nn.TransformerDecoderLayer(8, 2, 12, 0.0, activation)
        else:
            self.encoder = nn.TransformerEncoderLayer(8, 2, 12, 0.0, activation)
        self.head = nn.Linear(8, 3)

    def forward(self, ids):
        x = self.embedding(ids).transpose(0, 1)
        if not hasattr(self, "decoder"):
            y = self.encoder(x)
        elif self.masked or self.every_mask:
            t = ids.shape[1]
            padding = ids.eq(0)
            padding[:, 0] = False

            def causal(diagonal):
                return torch.full((t, t), float("-inf"), dtype=x.dtype).triu(diagonal)

            every = dict(memory_mask=causal(2), tgt_key_padding_mask=padding) if self.every_mask else {}
            y = self.decoder(x, self.memory(ids).transpose(0, 1), tgt_mask=causal(1),
                             memory_key_padding_mask=padding, **every)
        else:
            y = self.decoder(x, self.memory(ids).transpose(0, 1))
        return self.head(y.mean(0))


def sequence_cases():
    """CaseCatalogue.SequenceCases: EmbeddingBag, MultiheadAttention and the Transformer layers."""
    cases = {
        "bag-sum-rows": lambda s: BagClassifier("sum", False, False),
        "bag-mean-rows": lambda s: BagClassifier("mean", False, False),
        "bag-sum-offsets": lambda s: BagClassifier("sum", True, False),
        "bag-mean-offsets": lambda s: BagClassifier("mean", True, False),
        "bag-mean-offsets-one-id": lambda s: BagClassifier("mean", True, False),
        "bag-mean-lastoffset": lambda s: BagClassifier("mean", True, False, last_offset=True),
        "bag-sum-weighted-rows": lambda s: BagClassifier("sum", False, True),
        "bag-sum-weighted-offsets": lambda s: BagClassifier("sum", True, True),
        "bag-mean-pad0-rows": lambda s: BagClassifier("mean", False, False, padding=0),
        "attention-h2": lambda s: AttentionClassifier(),
        "attention-h1-nobias": lambda s: AttentionClassifier(heads=1, bias=False),
        "attention-h2-keypad-causal": lambda s: AttentionClassifier(key_padding=True, causal=True),
        "attention-h4-weights": lambda s: AttentionClassifier(heads=4, use_weights=True),
        "attention-h2-keypad-cross": lambda s: AttentionClassifier(key_padding=True, cross=True),
        "attention-h2-biaskv": lambda s: AttentionClassifier(bias_kv=True),
        "attention-h2-causal-biaskv": lambda s: AttentionClassifier(causal=True, bias_kv=True),
        "attention-h2-keypad-causal-zeroattn": lambda s: AttentionClassifier(key_padding=True, causal=True,
                                                                             zero_attn=True),
        "attention-h2-keypad-weights-biaskv-zeroattn": lambda s: AttentionClassifier(
            key_padding=True, use_weights=True, bias_kv=True, zero_attn=True),
        "attention-h2-cross-kv6": lambda s: AttentionClassifier(cross=True, kv_width=6),
        "attention-h2-cross-values": lambda s: AttentionClassifier(cross=True, distinct_values=True),
        "attention-h2-weights-weightsonly": lambda s: AttentionClassifier(use_weights=True, weights_only=True),
        "attention-h2-weights-biaskv-weightsonly": lambda s: AttentionClassifier(use_weights=True, bias_kv=True,
                                                                                  weights_only=True),
        "attention-h2-keypad-weights-cross-values-weightsonly": lambda s: AttentionClassifier(
            key_padding=True, use_weights=True, cross=True, distinct_values=True, weights_only=True),
        "transformer-encoder-relu": lambda s: TransformerClassifier(False, "relu"),
        "transformer-encoder-gelu": lambda s: TransformerClassifier(False, "gelu"),
        "transformer-decoder-relu": lambda s: TransformerClassifier(True, "relu"),
        "transformer-decoder-gelu-masked": lambda s: TransformerClassifier(True, "gelu", masked=True),
        "transformer-decoder-relu-every-mask": lambda s: TransformerClassifier(True, "relu", every_mask=True),
    }
    return cases
