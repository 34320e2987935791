"""dlib's face ResNet rebuilt in tf.keras from a parsed .dat: RGB chip (N, 150, 150, 3) -> (N, 128).

The net (dlib/examples/dnn_face_recognition_ex.cpp, anet_type): input_rgb_image_sized<150>
((pixel - mean) / 256 per channel, RGB), con 32 7x7/2 (no padding), affine, relu, max_pool 3x3/2,
residual levels of 32 (3 blocks), 64 (1 down + 3), 128 (1 down + 2), 256 (1 down + 2),
256 (1 down), avg_pool_everything, fc_no_bias 128. A block is con 3x3 -> affine -> relu ->
con 3x3 -> affine, added to its input, then relu. A down block's first con has stride 2 and no
padding; its shortcut is avg_pool 2x2/2 of the input, and the sum is dlib's add_prev, which
zero-pads the smaller tensor (channels, and rows/columns at the bottom/right) to the larger.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from kiosk.gallery import EMBEDDING_SIZE
from kiosk.training.dlib_embedder.dat_reader import DlibFormatError, DlibLayer, DlibNet

logger = logging.getLogger(__name__)

# (level channels, down-sampling first block?, number of blocks), input side first.
LEVELS: tuple[tuple[int, bool, int], ...] = (
    (32, False, 3), (64, True, 4), (128, True, 3), (256, True, 3), (256, True, 1))


def _take(layers: list[DlibLayer], i: int, kind: str) -> DlibLayer:
    if i >= len(layers) or layers[i].kind != kind:
        found = layers[i].kind if i < len(layers) else "the end"
        raise DlibFormatError(f"layer {i}: expected {kind}, found {found}")
    return layers[i]


def plan(net: DlibNet) -> list[tuple[str, dict[str, Any]]]:
    """The net as steps: ('stem', {...}), ('block', {...}) x 14, ('head', {...}); checks the layer list."""
    L = net.layers
    i = 0
    steps: list[tuple[str, dict[str, Any]]] = []
    con = _take(L, i, "con")
    aff = _take(L, i + 1, "affine")
    _take(L, i + 2, "relu")
    mp = _take(L, i + 3, "max_pool")
    i += 4
    steps.append(("stem", {"con": con, "affine": aff, "pool": mp}))
    for channels, down, blocks in LEVELS:
        for b in range(blocks):
            is_down = down and b == 0
            c1 = _take(L, i, "con")
            a1 = _take(L, i + 1, "affine")
            _take(L, i + 2, "relu")
            c2 = _take(L, i + 3, "con")
            a2 = _take(L, i + 4, "affine")
            i += 5
            pool = None
            if is_down:
                pool = _take(L, i, "avg_pool")
                i += 1
            _take(L, i, "add_prev")
            _take(L, i + 1, "relu")
            i += 2
            for c in (c1, c2):
                if c.values["num_filters"] != channels:
                    raise DlibFormatError(f"block con has {c.values['num_filters']} filters, expected {channels}")
            stride = 2 if is_down else 1
            if c1.values["stride_y"] != stride or c2.values["stride_y"] != 1:
                raise DlibFormatError("unexpected strides in a residual block")
            steps.append(("block", {"con1": c1, "aff1": a1, "con2": c2, "aff2": a2, "pool": pool}))
    gp = _take(L, i, "avg_pool")
    fc = _take(L, i + 1, "fc")
    if i + 2 != len(L):
        raise DlibFormatError(f"{len(L) - i - 2} unexpected layers after the fc layer")
    if gp.values["nr"] != 0:
        raise DlibFormatError("expected avg_pool_everything before the fc layer")
    steps.append(("head", {"fc": fc}))
    return steps


def _folded(con: DlibLayer, aff: DlibLayer) -> tuple[np.ndarray, np.ndarray]:
    """Keras kernel (kh, kw, in, out) and bias of con followed by the per-channel affine."""
    w = con.values["filters"].astype(np.float64)  # (out, in, kh, kw)
    b = con.values["biases"].astype(np.float64)
    g = aff.values["gamma"].astype(np.float64)
    beta = aff.values["beta"].astype(np.float64)
    if aff.values.get("disabled"):
        g, beta = np.ones_like(g), np.zeros_like(beta)
    w = w * g[:, None, None, None]
    b = b * g + beta
    return w.transpose(2, 3, 1, 0).astype(np.float32), b.astype(np.float32)


def build_keras(net: DlibNet) -> Any:
    """tf.keras Model: RGB float32 chip (N, 150, 150, 3), pixel values 0..255 -> (N, 128) embedding."""
    import tensorflow as tf

    steps = plan(net)
    inp_v = net.input
    size = int(inp_v["nr"])
    mean = np.array([inp_v["avg_red"], inp_v["avg_green"], inp_v["avg_blue"]], np.float32)
    layers = tf.keras.layers

    def conv(x: Any, con: DlibLayer, aff: DlibLayer, name: str) -> Any:
        kernel, bias = _folded(con, aff)
        v = con.values
        stride = int(v["stride_y"])
        if v["padding_y"] == 0:
            padding = "valid"
        elif v["padding_y"] == v["nr"] // 2 and stride == 1:
            padding = "same"
        else:
            raise DlibFormatError(f"unsupported con padding {v['padding_y']} with stride {stride}")
        layer = layers.Conv2D(int(v["num_filters"]), (int(v["nr"]), int(v["nc"])), strides=stride,
                              padding=padding, name=name)
        y = layer(x)
        layer.set_weights([kernel, bias])
        return y

    chip = tf.keras.Input((size, size, 3), name="chip_rgb")
    scale = np.float32(1.0 / 256.0)
    x = layers.Rescaling(scale, offset=-mean * scale, name="dlib_input")(chip)
    stem = steps[0][1]
    x = conv(x, stem["con"], stem["affine"], "stem_conv")
    x = layers.ReLU(name="stem_relu")(x)
    p = stem["pool"].values
    x = layers.MaxPooling2D((p["nr"], p["nc"]), strides=p["stride_y"], padding="valid", name="stem_pool")(x)
    for n, (_kind, s) in enumerate(steps[1:-1]):
        y = conv(x, s["con1"], s["aff1"], f"b{n}_conv1")
        y = layers.ReLU(name=f"b{n}_relu1")(y)
        y = conv(y, s["con2"], s["aff2"], f"b{n}_conv2")
        shortcut = x
        if s["pool"] is not None:
            pv = s["pool"].values
            shortcut = layers.AveragePooling2D((pv["nr"], pv["nc"]), strides=pv["stride_y"], padding="valid",
                                               name=f"b{n}_pool")(x)
        # dlib's add_prev: the smaller tensor is zero-padded (bottom/right, extra channels).
        hs, ws, cs = shortcut.shape[1], shortcut.shape[2], shortcut.shape[3]
        hy, wy, cy = y.shape[1], y.shape[2], y.shape[3]
        H, W, C = max(hs, hy), max(ws, wy), max(cs, cy)
        if (hs, ws, cs) != (H, W, C):
            shortcut = layers.Lambda(
                lambda t, a=(H - hs, W - ws, C - cs): tf.pad(t, [[0, 0], [0, a[0]], [0, a[1]], [0, a[2]]]),
                name=f"b{n}_pad_short")(shortcut)
        if (hy, wy, cy) != (H, W, C):
            y = layers.Lambda(
                lambda t, a=(H - hy, W - wy, C - cy): tf.pad(t, [[0, 0], [0, a[0]], [0, a[1]], [0, a[2]]]),
                name=f"b{n}_pad_res")(y)
        x = layers.Add(name=f"b{n}_add")([shortcut, y])
        x = layers.ReLU(name=f"b{n}_relu2")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool_everything")(x)
    fc = steps[-1][1]["fc"]
    dense = layers.Dense(EMBEDDING_SIZE, use_bias="biases" in fc.values, name="fc")
    out = dense(x)
    weights = [fc.values["weights"]] + ([fc.values["biases"]] if "biases" in fc.values else [])
    dense.set_weights(weights)
    return tf.keras.Model(chip, out, name="dlib_face_resnet_v1")
