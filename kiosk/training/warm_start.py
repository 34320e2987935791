"""Start training from the weights of a shipped int8 .tflite model (dequantised; train extra only).

The int8 export folds each BatchNormalization into its convolution (and the pixel scaling into
the first one), so the net gets the folded kernel (the first one divided by the scaling), and
its BatchNormalization is set from data statistics so that the layer passes
the convolution's output through unchanged (plus the folded bias) in training and in inference:
moving mean/variance = the batch's mean/variance of the conv output, gamma = its std, beta = mean + bias.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from kiosk.errors import KioskError
from kiosk.training.architecture import PIXEL_SCALE
from kiosk.training.net import ExpressionNet

logger = logging.getLogger(__name__)

WEIGHTED_OPS = ("CONV_2D", "FULLY_CONNECTED")


def _dequantise(details: dict, values: np.ndarray) -> np.ndarray:
    """float32 values of a quantised constant tensor (per-channel scales along its quantized_dimension)."""
    params = details["quantization_parameters"]
    scales, zeros = params["scales"], params["zero_points"]
    if len(scales) == 0:
        return values.astype(np.float32)
    shape = [1] * values.ndim
    if len(scales) > 1:
        shape[params["quantized_dimension"]] = len(scales)
    return ((values.astype(np.float32) - zeros.reshape(shape)) * scales.reshape(shape)).astype(np.float32)


def read_tflite_layers(path: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(op name, kernel, bias) per conv / dense op in graph order, in Keras layout.

    Conv kernels come back H x W x in x out, dense kernels in x out, biases out; all float32.
    """
    from ai_edge_litert.interpreter import Interpreter

    path = Path(path)
    if not path.is_file():
        raise KioskError(f"{path}: no such model to start from")
    try:
        interpreter = Interpreter(model_path=str(path))
    except ValueError as exc:
        raise KioskError(f"{path}: not a TFLite model ({str(exc).strip()})") from None
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    layers: list[tuple[str, np.ndarray, np.ndarray]] = []
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the only way to walk the graph
        if op["op_name"] not in WEIGHTED_OPS:
            continue
        _, kernel_index, bias_index = op["inputs"][:3]
        kernel = _dequantise(tensors[kernel_index], interpreter.get_tensor(kernel_index))
        bias = _dequantise(tensors[bias_index], interpreter.get_tensor(bias_index))
        kernel = kernel.transpose(1, 2, 3, 0) if op["op_name"] == "CONV_2D" else kernel.T
        layers.append((op["op_name"], kernel, bias))
    return layers


class _Captured(Exception):
    """Carries a layer's output out of a forward pass that need not go further."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__("captured")
        self.output = output


def _output_of(net: ExpressionNet, layer: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    def hook(_module, _inputs, output):
        raise _Captured(output)

    handle = layer.register_forward_hook(hook)
    try:
        net(pixels)
    except _Captured as captured:
        return captured.output
    finally:
        handle.remove()
    raise RuntimeError("layer was not reached")  # pragma: no cover - every conv is on the path


@torch.no_grad()
def init_from_tflite(net: ExpressionNet, path: Path, sample: np.ndarray) -> None:
    """Load path's weights into net (an ExpressionNet of the same widths).

    sample: uint8 N x 48 x 48 training crops (a few thousand) for the BatchNormalization statistics.
    """
    found = read_tflite_layers(path)
    pairs = net.conv_norm_pairs()
    wanted: list[tuple[int, ...]] = [(3, 3, conv.in_channels, conv.out_channels) for conv, _ in pairs]
    wanted.append((net.classifier.in_features, net.classifier.out_features))
    got = [tuple(kernel.shape) for _, kernel, _ in found]
    if wanted != got:
        raise KioskError(f"{path}: its layers {got} do not fit this model's {wanted}; use the same widths")
    net.eval()
    pixels = torch.from_numpy(sample).float().unsqueeze(1)
    for i, ((conv, norm), (_, kernel, bias)) in enumerate(zip(pairs, found[: len(pairs)], strict=True)):
        kernel = kernel / PIXEL_SCALE if i == 0 else kernel  # the converter folded the scaling into it
        conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1)))
        outputs = _output_of(net, conv, pixels)
        mean, var = outputs.mean(dim=(0, 2, 3)), outputs.var(dim=(0, 2, 3), unbiased=False)
        assert norm.running_mean is not None and norm.running_var is not None  # track_running_stats
        norm.running_mean.copy_(mean)
        norm.running_var.copy_(var)
        norm.weight.copy_(torch.sqrt(var + norm.eps))
        norm.bias.copy_(mean + torch.from_numpy(bias))
    _, kernel, bias = found[-1]
    net.classifier.weight.copy_(torch.from_numpy(kernel.T))
    net.classifier.bias.copy_(torch.from_numpy(bias))
    logger.info("started from %s (%d layers, BatchNorm statistics from %d crops)", path, len(found), len(sample))
