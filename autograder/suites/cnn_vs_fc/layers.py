"""What a layer is, as plain numbers: the layer tests compare these, never ``repr`` strings, and the design
part rebuilds a submission's net from them on the trusted side.

:func:`spec` runs in the sandbox (its source is sent there): it reads a ``torch.nn`` layer's constructor
arguments back from the layer. :func:`normalised` makes equal what builds the same layer (``3`` and
``(3, 3)``, a pooling stride ``None`` and the window, ``padding="same"`` and its numbers); :func:`build`
makes a layer from a spec, only of the types in :data:`BUILDABLE`.
"""
from __future__ import annotations

import inspect

from torch import nn

ACTIVATIONS = {"ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Tanh",
               "Sigmoid", "Hardswish", "Hardtanh", "Softplus"}
BUILDABLE = ACTIVATIONS | {"Conv2d", "Linear", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
                           "BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm", "Dropout", "Dropout2d",
                           "Flatten", "Identity", "Softmax", "LogSoftmax"}
PAIRS = ("kernel_size", "stride", "padding", "dilation")  # an int means the same for height and width
SHOWN_FIRST = ("in_channels", "out_channels", "in_features", "out_features", "kernel_size", "stride", "padding",
               "dilation")
IGNORED = {"inplace"}  # changes no value a layer computes


def spec(layer) -> dict:
    """A ``torch.nn`` layer as ``{"type": its class, argument: value, ...}``, each constructor argument read back
    from the layer (``bias``: whether it has one); a class of another module gives only its name and module."""
    kind = type(layer)
    if not kind.__module__.startswith("torch.nn."):
        return {"type": kind.__qualname__, "module": kind.__module__}
    found = {"type": kind.__name__}
    for name, parameter in inspect.signature(kind.__init__).parameters.items():
        if name in ("self", "device", "dtype") or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if name == "bias":
            found[name] = getattr(layer, "bias", None) is not None
        elif hasattr(layer, name):
            found[name] = getattr(layer, name)
    return found


def normalised(layer: dict) -> dict:
    """``layer`` with sizes as (height, width) pairs, the pooling stride resolved and padding as numbers."""
    found = {key: value for key, value in layer.items() if key not in IGNORED}
    if not str(found.get("type", "")).endswith("2d"):
        return found
    for key in PAIRS:
        value = found.get(key)
        if isinstance(value, int):
            found[key] = (value, value)
        elif isinstance(value, list):
            found[key] = tuple(value)
    if "Pool" in found["type"] and "stride" in found and found["stride"] in (None, ()):
        found["stride"] = found.get("kernel_size")
    padding, kernel, dilation = found.get("padding"), found.get("kernel_size"), found.get("dilation", (1, 1))
    if padding == "valid":
        found["padding"] = (0, 0)
    elif padding == "same" and all(d * (k - 1) % 2 == 0 for d, k in zip(dilation, kernel)):
        found["padding"] = tuple(d * (k - 1) // 2 for d, k in zip(dilation, kernel))  # PyTorch's "same", stride 1
    return found


def show(layer: dict) -> str:
    """``Conv2d(in_channels=1, out_channels=16, kernel_size=(3, 3), ...)``: what a layer is, for a message."""
    keys = [k for k in SHOWN_FIRST if k in layer] + [k for k in layer if k not in SHOWN_FIRST and k != "type"]
    return f"{layer.get('type')}({', '.join(f'{key}={layer[key]!r}' for key in keys)})"


def build(layer: dict, device: str = "cpu") -> nn.Module:
    """The layer ``layer`` describes, of a type in :data:`BUILDABLE` (ValueError otherwise)."""
    kind = layer.get("type")
    if kind not in BUILDABLE or not str(layer.get("module", "torch.nn.")).startswith("torch.nn."):
        raise ValueError(f"{show(layer)} is not one of the torch.nn layers the grader rebuilds "
                         f"({', '.join(sorted(BUILDABLE))})")
    cls = getattr(nn, kind)
    arguments = {key: value for key, value in layer.items() if key != "type"}
    if "device" in inspect.signature(cls.__init__).parameters:
        arguments["device"] = device
    try:
        return cls(**arguments)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{show(layer)} cannot be built: {error}") from None
