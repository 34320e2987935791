"""Start training from the weights of a shipped int8 .tflite model (dequantised; train extra only).

The int8 export folds each BatchNormalization into its convolution (and the input Rescaling into
the first one), so the Keras model gets the folded kernel (the first one divided by the Rescaling), and its BatchNormalization is set from data statistics so that the layer passes
the convolution's output through unchanged (plus the folded bias) in training and in inference:
moving mean/variance = the batch's mean/variance of the conv output, gamma = its std, beta = mean + bias.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kiosk.errors import KioskError

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


def init_from_tflite(model, path: Path, sample: np.ndarray) -> None:
    """Load path's weights into model (built by build_model with the same widths).

    sample: uint8 N x 48 x 48 training crops (a few thousand) for the BatchNormalization statistics.
    """
    import keras
    from keras import layers as kl

    found = read_tflite_layers(path)
    convs = [layer for layer in model.layers if isinstance(layer, kl.Conv2D)]
    denses = [layer for layer in model.layers if isinstance(layer, kl.Dense)]
    wanted = [layer.kernel.shape for layer in convs + denses]
    got = [kernel.shape for _, kernel, _ in found]
    if [tuple(s) for s in wanted] != [tuple(s) for s in got]:
        raise KioskError(f"{path}: its layers {got} do not fit this model's {wanted}; use the same widths")
    x = sample[..., None].astype(np.float32)
    pixel_scale = float(model.get_layer("scale").scale)  # folded into the first conv by the converter
    for i, (conv, (_, kernel, bias)) in enumerate(zip(convs, found[: len(convs)], strict=True)):
        conv.kernel.assign(kernel / pixel_scale if i == 0 else kernel)
        norm = model.get_layer(conv.name.replace("_conv", "_bn"))
        outputs = np.asarray(keras.Model(model.input, conv.output)(x, training=False))
        mean, var = outputs.mean(axis=(0, 1, 2)), outputs.var(axis=(0, 1, 2))
        norm.set_weights([np.sqrt(var + norm.epsilon), mean + bias, mean, var])
    dense, (_, kernel, bias) = denses[0], found[-1]
    dense.set_weights([kernel, bias])
    logger.info("started from %s (%d layers, BatchNorm statistics from %d crops)", path, len(found), len(sample))
