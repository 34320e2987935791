"""Reads dlib's serialised loss_metric net (a .dat file) into layers of numpy arrays; no dlib needed.

Formats, from dlib's source (dlib/serialize.h, dlib/dnn/{core,layers,input,loss}.h, dlib/cuda/tensor.h):

- integers: a control byte (low 4 bits: byte count, 0x80: negative) then little-endian bytes;
- floats (scalars): mantissa (integer) then exponent (integer), value = mantissa * 2**exponent;
- strings: length (integer) then the bytes; bools: the character '0' or '1';
- tensors: version 2, num_samples, k, nr, nc (integers), then 4-byte little-endian floats;
- a network: each wrapper writes its version integer and then its sub-network, so the file is
  the chain of versions from the loss inwards (add_layer 2, tag/skip 1, the innermost
  add_layer 3), the input layer, then every layer's details from the input outwards
  (add_layer: details, 3 bools, x_grad, cached_output, params_grad tensors).
"""

from __future__ import annotations

import builtins
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.errors import ModelError

logger = logging.getLogger(__name__)


class DlibFormatError(ModelError, ValueError):
    """The file is not the dlib network this reader knows."""


@dataclass
class DlibLayer:
    """One computational layer of a dlib net: kind ('con', 'affine', 'relu', ...) and its values."""

    kind: str
    version: str
    values: dict[str, Any] = field(default_factory=dict)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the array values."""
        return {k: v.shape for k, v in self.values.items() if isinstance(v, np.ndarray)}


@dataclass
class DlibNet:
    """A parsed dlib net: input layer values, the loss, and the layers from the input outwards."""

    input: dict[str, Any]
    loss: dict[str, Any]
    layers: list[DlibLayer]
    wrappers: int

    def count(self, kind: str) -> int:
        """How many layers of this kind."""
        return sum(1 for layer in self.layers if layer.kind == kind)

    def num_params(self) -> int:
        """Number of trainable numbers (conv filters and biases, affine gamma/beta, fc weights)."""
        total = 0
        for layer in self.layers:
            for key in ("filters", "biases", "gamma", "beta", "weights"):
                if key in layer.values:
                    total += int(layer.values[key].size)
        return total


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _need(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"file ends early (at byte {self.pos}, need {n} more)")

    def int(self) -> int:
        self._need(1)
        ctrl = self.data[self.pos]
        size = ctrl & 0x0F
        if size == 0 or size > 8 or ctrl & 0x70:
            raise DlibFormatError(f"bad integer control byte 0x{ctrl:02x} at byte {self.pos}")
        self._need(1 + size)
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if ctrl & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        if exponent >= 32767 - 2:  # float_details: is_inf, is_ninf, is_nan
            return {32767 - 2: float("inf"), 32767 - 1: float("-inf")}.get(exponent, float("nan"))
        return float(np.ldexp(float(mantissa), exponent))

    def string(self) -> str:
        size = self.int()
        self._need(size)
        raw = self.data[self.pos:self.pos + size]
        self.pos += size
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise DlibFormatError(f"expected a layer name at byte {self.pos - size}") from None

    def peek_string(self) -> str | None:
        pos = self.pos
        try:
            return self.string()
        except DlibFormatError:
            return None
        finally:
            self.pos = pos

    def bool(self) -> bool:
        self._need(1)
        ch = self.data[self.pos]
        self.pos += 1
        if ch not in (ord("0"), ord("1")):
            raise DlibFormatError(f"bad bool byte 0x{ch:02x} at byte {self.pos - 1}")
        return ch == ord("1")

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"tensor version {version} at byte {self.pos}, expected 2")
        shape = tuple(self.int() for _ in range(4))
        n = int(np.prod(shape))
        self._need(4 * n)
        arr = np.frombuffer(self.data, dtype="<f4", count=n, offset=self.pos).astype(np.float32)
        self.pos += 4 * n
        return arr.reshape(shape)

    def alias_tensor(self) -> tuple[builtins.int, ...]:
        version = self.int()
        if version != 1:
            raise DlibFormatError(f"alias_tensor version {version}, expected 1")
        return tuple(self.int() for _ in range(4))


def _read_details(r: _Reader) -> DlibLayer:
    """One layer's details (the part that starts with its version string)."""
    version = r.string()
    if version in ("con_4", "con_5", "con_6"):
        params = r.tensor().reshape(-1)
        v: dict[str, Any] = {"num_filters": r.int(), "nr": r.int(), "nc": r.int(),
                             "stride_y": r.int(), "stride_x": r.int(),
                             "padding_y": r.int(), "padding_x": r.int()}
        fshape = r.alias_tensor()
        bshape = r.alias_tensor()
        for _ in range(4):
            r.float()  # learning-rate and weight-decay multipliers
        use_bias = r.bool() if version in ("con_5", "con_6") else True
        if version == "con_6":
            r.bool()  # use_relu (fused relu, a later dlib feature)
        nf = int(np.prod(fshape))
        v["filters"] = params[:nf].reshape(fshape)
        if use_bias:
            v["biases"] = params[nf:nf + int(np.prod(bshape))].reshape(-1)
        else:
            v["biases"] = np.zeros(v["num_filters"], np.float32)
        return DlibLayer("con", version, v)
    if version in ("affine_", "affine_2"):
        params = r.tensor().reshape(-1)  # gamma then beta
        gshape = r.alias_tensor()
        bshape = r.alias_tensor()
        ng, nb = int(np.prod(gshape)), int(np.prod(bshape))
        if params.size != ng + nb:
            raise DlibFormatError(f"affine layer holds {params.size} values, expected {ng} + {nb}")
        gamma, beta = params[:ng], params[ng:]
        mode = r.int()
        disabled = r.bool() if version == "affine_2" else False
        return DlibLayer("affine", version, {"gamma": gamma, "beta": beta, "mode": mode, "disabled": disabled})
    if version in ("relu_", "relu_2"):
        disabled = r.bool() if version == "relu_2" else False
        return DlibLayer("relu", version, {"disabled": disabled})
    if version in ("max_pool_2", "avg_pool_2"):
        v = {"nr": r.int(), "nc": r.int(), "stride_y": r.int(), "stride_x": r.int(),
             "padding_y": r.int(), "padding_x": r.int()}
        return DlibLayer(version[:-2], version, v)
    if version == "add_prev_":
        return DlibLayer("add_prev", version)
    if version in ("fc_2", "fc_3"):
        v = {"num_outputs": r.int(), "num_inputs": r.int()}
        params = r.tensor().reshape(-1)
        wshape = r.alias_tensor()
        bshape = r.alias_tensor()
        v["bias_mode"] = r.int()
        for _ in range(4):
            r.float()
        use_bias = r.bool() if version == "fc_3" else True
        nw = int(np.prod(wshape))
        v["weights"] = params[:nw].reshape(v["num_inputs"], v["num_outputs"])
        if v["bias_mode"] == 0 and use_bias:  # FC_HAS_BIAS
            v["biases"] = params[nw:nw + int(np.prod(bshape))].reshape(-1)
        return DlibLayer("fc", version, v)
    raise DlibFormatError(f"layer type {version!r} is not supported by this reader")


def read_dlib_net(path: Path | str) -> DlibNet:
    """Parse a dlib loss_metric net file (e.g. dlib_face_recognition_resnet_model_v1.dat)."""
    data = Path(path).read_bytes()
    r = _Reader(data)
    if r.int() != 1:
        raise DlibFormatError("not a dlib add_loss_layer (version 1 expected first)")
    loss_name = r.string()
    if not loss_name.startswith("loss_metric_"):
        raise DlibFormatError(f"expected a loss_metric net, found {loss_name!r}")
    loss: dict[str, Any] = {"name": loss_name}
    if loss_name == "loss_metric_2":
        loss["margin"] = r.float()
        loss["dist_thresh"] = r.float()
    # The chain of wrapper versions, outermost first, until the input layer's name.
    versions: list[int] = []
    while True:
        name = r.peek_string()
        if name is not None and name.startswith("input_"):
            break
        versions.append(r.int())
        if len(versions) > 10000:
            raise DlibFormatError("no input layer found")
    if not versions or versions[-1] not in (2, 3):
        raise DlibFormatError("the innermost layer is not an add_layer over the input")
    input_version = versions.pop()
    name = r.string()
    if name != "input_rgb_image_sized":
        raise DlibFormatError(f"input layer {name!r} is not supported (input_rgb_image_sized expected)")
    inp = {"avg_red": r.float(), "avg_green": r.float(), "avg_blue": r.float(), "nr": r.int(), "nc": r.int()}
    layers = [_read_details(r)]
    for _ in range(3):
        r.bool()
    r.tensor()
    r.tensor()
    r.tensor()
    if input_version >= 3:
        r.int()  # _sample_expansion_factor
    for version in reversed(versions):
        if version == 1:  # tag or skip: nothing after its sub-network
            continue
        if version != 2:
            raise DlibFormatError(f"unexpected add_layer version {version}")
        layers.append(_read_details(r))
        for _ in range(3):
            r.bool()
        for _ in range(3):
            r.tensor()
    if r.pos != len(data):
        raise DlibFormatError(f"{len(data) - r.pos} bytes left after the net")
    return DlibNet(input=inp, loss=loss, layers=layers, wrappers=len(versions) + 1)
