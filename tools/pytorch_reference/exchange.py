"""The exchange folder (src/PerSampleGrads/Interop/ExchangeFolder.cs, ExchangeManifest.cs): request.json and one .npy
per parameter, buffer, the inputs and the targets in; result/result.json and one .npy per gradient out."""

import copy
import json
import os

import numpy as np
import torch

from . import FORMAT, BadInput
from .models import build, make_loss

DTYPES = {"float32": torch.float32, "float64": torch.float64}
NUMPY_KINDS = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "bool": np.bool_}
RESULT_FOLDER = "result"


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
        if (self.inputs.dim() == 0 or self.inputs.shape[0] != self.batch_size
                or self.targets.shape[0] != self.batch_size):
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
            raise BadInput("%s: %s holds shape %s, the manifest says %s"
                           % (what, entry["file"], list(array.shape), entry["shape"]))
        if entry["dtype"] not in NUMPY_KINDS or array.dtype != NUMPY_KINDS[entry["dtype"]]:
            raise BadInput("%s: %s holds %s, the manifest says %s" % (what, entry["file"], array.dtype, entry["dtype"]))
        # np.array(order="C"), not np.ascontiguousarray, which turns a 0-d array into a 1-d one.
        return torch.from_numpy(np.array(array, order="C", copy=True))

    def build(self):
        model = build(self.architecture, self.inputs.shape[1:]).to(self.dtype)
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
                    raise BadInput("parameter '%s' is %s but the run's dtype is %s"
                                   % (entry["name"], value.dtype, self.dtype))
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


def result_folder(folder):
    """<folder>/result/, created when missing."""
    out_folder = os.path.join(folder, RESULT_FOLDER)
    os.makedirs(out_folder, exist_ok=True)
    return out_folder


def save_gradients(out_folder, method_index, names, gradients, dtype):
    """One .npy per parameter (m<method>-p<parameter>.npy) in `dtype`; the manifest entries {name, file, shape}."""
    files = []
    for k, n in enumerate(names):
        g = gradients[n].detach().to(dtype).contiguous()
        file = "m%d-p%03d.npy" % (method_index, k)
        np.save(os.path.join(out_folder, file), g.numpy())
        files.append({"name": n, "file": file, "shape": list(g.shape)})
    return files


def write_result(out_folder, result):
    """result/result.json, the answer the C# side reads."""
    with open(os.path.join(out_folder, "result.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
