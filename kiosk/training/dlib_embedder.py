"""dlib's 128-d face embedder (ResNet `dlib_face_recognition_resnet_model_v1.dat`) as a TFLite twin.

Reads the network's weights straight from dlib's serialisation (no dlib needed), rebuilds
the same net in tf.keras and exports .tflite (float32, float16 or int8). Formats, from dlib's
source (dlib/serialize.h, dlib/dnn/{core,layers,input,loss}.h, dlib/cuda/tensor.h):

- integers: a control byte (low 4 bits: byte count, 0x80: negative) then little-endian bytes;
- floats (scalars): mantissa (integer) then exponent (integer), value = mantissa * 2**exponent;
- strings: length (integer) then the bytes; bools: the character '0' or '1';
- tensors: version 2, num_samples, k, nr, nc (integers), then 4-byte little-endian floats;
- a network: each wrapper writes its version integer and then its sub-network, so the file is
  the chain of versions from the loss inwards (add_layer 2, tag/skip 1, the innermost
  add_layer 3), the input layer, then every layer's details from the input outwards
  (add_layer: details, 3 bools, x_grad, cached_output, params_grad tensors).

The net (dlib/examples/dnn_face_recognition_ex.cpp, anet_type): input_rgb_image_sized<150>
((pixel - mean) / 256 per channel, RGB), con 32 7x7/2 (no padding), affine, relu, max_pool 3x3/2,
residual levels of 32 (3 blocks), 64 (1 down + 3), 128 (1 down + 2), 256 (1 down + 2),
256 (1 down), avg_pool_everything, fc_no_bias 128. A block is con 3x3 -> affine -> relu ->
con 3x3 -> affine, added to its input, then relu. A down block's first con has stride 2 and no
padding; its shortcut is avg_pool 2x2/2 of the input, and the sum is dlib's add_prev, which
zero-pads the smaller tensor (channels, and rows/columns at the bottom/right) to the larger.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kiosk.errors import ModelError

logger = logging.getLogger(__name__)

CHIP_SIZE = 150
CHIP_PADDING = 0.25
EMBEDDING_SIZE = 128
# (level channels, down-sampling first block?, number of blocks), input side first.
LEVELS: tuple[tuple[int, bool, int], ...] = (
    (32, False, 3), (64, True, 4), (128, True, 3), (256, True, 3), (256, True, 1))


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

    def alias_tensor(self) -> tuple[int, ...]:
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
    loss = {"name": loss_name}
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


# ---------------------------------------------------------------------------------------------
# The net's topology, checked against the layer list.

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


# ---------------------------------------------------------------------------------------------
# Export and checks.

def export_tflite(model: Any, out: Path, precision: str, calibration: np.ndarray | None = None) -> Path:
    """Write model as .tflite (precision 'f32', 'f16', 'dyn8' or 'int8') plus its .sha256; returns out."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "f16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("int8 export needs calibration chips")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def representative() -> Any:
            for chip in calibration:
                yield [chip[None].astype(np.float32)]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # float32 chip in, float32 embedding out; int8 inside.
    elif precision == "dyn8":
        # Dynamic range: int8 weights, activations quantised on the fly (no calibration).
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision != "f32":
        raise ValueError(f"unknown precision {precision!r}")
    data = converter.convert()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    out.with_name(out.name + ".sha256").write_text(f"{digest}  {out.name}\n")
    return out


def default_dat_path() -> Path:
    """Where face_recognition_models keeps dlib_face_recognition_resnet_model_v1.dat."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition_models

    return Path(face_recognition_models.face_recognition_model_location())


def extract_chips(paths: list[Path], cache: Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(chips uint8 (N,150,150,3), dlib descriptors float32 (N,128), names) of the largest face per photo.

    dlib's own chip extraction (5-point landmarks, size 150, padding 0.25), as compute_face_descriptor
    does; photos without a face are skipped. Cached as .npz when cache is given.
    """
    if cache is not None and cache.exists():
        z = np.load(cache, allow_pickle=False)
        return z["chips"], z["desc"], [str(n) for n in z["names"]]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import dlib
        import face_recognition.api as api
    from kiosk.vision.faces import load_image

    chips, descs, names = [], [], []
    for path in paths:
        img = load_image(path)
        boxes = api.face_locations(img, 1, "hog") or api.face_locations(img, 0, "hog")
        if not boxes:
            continue
        box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
        shape = api.pose_predictor_5_point(img, api._css_to_rect(box))
        chip = dlib.get_face_chip(img, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        desc = np.asarray(api.face_encoder.compute_face_descriptor(img, shape, 1), np.float32)
        chips.append(np.asarray(chip, np.uint8))
        descs.append(desc)
        names.append(str(path))
    out = (np.stack(chips), np.stack(descs), names)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, chips=out[0], desc=out[1], names=np.array(names))
    return out


def tflite_embed(path: Path, chips: np.ndarray, threads: int = 1) -> tuple[np.ndarray, float]:
    """(embeddings (N,128) float32, ms per chip) of a .tflite twin on uint8 chips, LiteRT, one invoke each."""
    from kiosk.vision.runtime import load_interpreter

    interp, _ = load_interpreter(path, check=False, threads=threads)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    embs = np.empty((len(chips), EMBEDDING_SIZE), np.float32)
    # one warm-up invoke
    interp.set_tensor(inp["index"], chips[:1].astype(np.float32))
    interp.invoke()
    start = time.perf_counter()
    for i, chip in enumerate(chips):
        interp.set_tensor(inp["index"], chip[None].astype(np.float32))
        interp.invoke()
        embs[i] = interp.get_tensor(out["index"])[0]
    ms = (time.perf_counter() - start) * 1000.0 / max(len(chips), 1)
    return embs, ms


def paired_timing(models: dict[str, Path], chips: np.ndarray, n: int = 40) -> dict[str, float]:
    """Median ms per face of dlib's compute_face_descriptor and of each .tflite (LiteRT, 1 thread).

    The calls alternate chip by chip (dlib, then each model), so all see the same machine load.
    """
    import warnings

    from kiosk.vision.runtime import load_interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition.api as api
    interps = {}
    for name, path in models.items():
        interp, _ = load_interpreter(path, check=False, threads=1)
        interps[name] = (interp, interp.get_input_details()[0]["index"])
    times: dict[str, list[float]] = {"dlib": [], **{name: [] for name in models}}
    for i, chip in enumerate(chips[: n + 2]):
        t = time.perf_counter()
        api.face_encoder.compute_face_descriptor(chip)
        dt = {"dlib": time.perf_counter() - t}
        x = chip[None].astype(np.float32)
        for name, (interp, index) in interps.items():
            t = time.perf_counter()
            interp.set_tensor(index, x)
            interp.invoke()
            dt[name] = time.perf_counter() - t
        if i >= 2:  # two warm-up rounds
            for name, value in dt.items():
                times[name].append(value * 1000.0)
    return {name: float(np.median(v)) for name, v in times.items()}


def identity_agreement(faces: Path, people: int = 40, strangers: int = 100, enrol: int = 3,
                       model: Path | None = None, cache: Path | None = None) -> dict[str, Any]:
    """The door's decisions with embedder dlib against litert (default settings, mirror TTA on).

    Every len/people-th person of faces/people: the first `enrol` photos are templates, the rest
    probes; plus the first `strangers` strangers. Both analyzers describe the same detected face
    (box found once); returns agreement, each one's rates, and the median ms of describe().
    """
    import warnings

    from kiosk.config import RecognitionSettings
    from kiosk.gallery import Gallery
    from kiosk.vision.faces import DlibFaceAnalyzer, load_image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analyzers = {"dlib": DlibFaceAnalyzer(RecognitionSettings()),
                     "litert": DlibFaceAnalyzer(RecognitionSettings(embedder="litert", embedder_model=model))}
    folders = sorted(p for p in (faces / "people").iterdir() if p.is_dir())
    step = max(1, len(folders) // people)
    chosen = folders[::step][:people]
    photos = [(f.name, p) for f in chosen for p in sorted(f.glob("*.jpg"))]
    photos += [(None, p) for p in sorted((faces / "strangers").glob("*.jpg"))[:strangers]]
    emb: dict[str, list[np.ndarray | None]] = {"dlib": [], "litert": []}
    ms: dict[str, list[float]] = {"dlib": [], "litert": []}
    if cache is not None and cache.exists():
        z = np.load(cache, allow_pickle=False)
        ok = z["ok"]
        for kind in emb:
            emb[kind] = [z[kind][i] if ok[i] else None for i in range(len(ok))]
            ms[kind] = list(z[f"ms_{kind}"])
    else:
        for _, path in photos:
            image = load_image(path)
            boxes = analyzers["dlib"].detect(image)
            box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3])) if boxes else None
            for kind, analyzer in analyzers.items():
                face = None
                if box is not None:
                    t = time.perf_counter()
                    face = analyzer.describe(image, box)
                    ms[kind].append((time.perf_counter() - t) * 1000.0)
                emb[kind].append(face.embedding if face is not None and face.accepted else None)
        if cache is not None:
            ok = np.array([e is not None for e in emb["dlib"]])
            zero = np.zeros(EMBEDDING_SIZE, np.float32)
            np.savez_compressed(cache, ok=ok, **{k: np.stack([e if e is not None else zero for e in v])
                                                 for k, v in emb.items()},
                                **{f"ms_{k}": np.array(v) for k, v in ms.items()})
    decisions: dict[str, list[tuple[str | None, str | None]]] = {}
    rates: dict[str, dict[str, float]] = {}
    for kind in emb:
        gallery = Gallery(analyzers[kind].settings)
        probes: list[tuple[str | None, np.ndarray | None]] = []
        seen: dict[str, int] = {}
        for (name, _), e in zip(photos, emb[kind], strict=True):
            if name is not None and seen.get(name, 0) < enrol:
                seen[name] = seen.get(name, 0) + 1
                if e is not None:
                    gallery.add(name, e)
                continue
            probes.append((name, e))
        decisions[kind] = [(t, gallery.identify(e).person_id if e is not None else None) for t, e in probes]
        known = [(t, g) for t, g in decisions[kind] if t is not None]
        unknown = [g for t, g in decisions[kind] if t is None]
        rates[kind] = {"probes": len(known), "correct": sum(t == g for t, g in known) / max(len(known), 1),
                       "wrong_person": sum(g is not None and g != t for t, g in known) / max(len(known), 1),
                       "strangers": len(unknown),
                       "stranger_accepted": sum(g is not None for g in unknown) / max(len(unknown), 1)}
    same = sum(a == b for a, b in zip(decisions["dlib"], decisions["litert"], strict=True))
    both = [(a, b) for a, b in zip(emb["dlib"], emb["litert"], strict=True) if a is not None and b is not None]
    return {"people": len(chosen), "photos": len(photos), "decisions": len(decisions["dlib"]),
            "same_decision": same, "rates": rates,
            "embedding_distance": distance_stats(np.stack([a for a, _ in both]), np.stack([b for _, b in both])),
            "describe_ms_median": {k: float(np.median(v)) for k, v in ms.items() if v}}


def distance_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Median, 99th percentile and max Euclidean distance between matching rows of a and b."""
    d = np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=1)
    return {"n": int(len(d)), "median": float(np.median(d)), "p99": float(np.percentile(d, 99)),
            "max": float(d.max())}


def _face_photos(root: Path, limit: int) -> list[Path]:
    people = sorted(p for p in (root / "people").iterdir() if p.is_dir())
    paths: list[Path] = []
    for person in people:  # one photo per person first, then more, so the set spans people
        photos = sorted(person.glob("*.jpg"))
        if photos:
            paths.append(photos[0])
    strangers = sorted((root / "strangers").glob("*.jpg"))
    paths += strangers[: max(0, limit - len(paths))]
    return paths[:limit]


def main(argv: list[str] | None = None, prog: str = "python -m kiosk.training.dlib_embedder") -> int:
    """CLI: convert the dlib .dat to .tflite and measure it against dlib on face chips."""
    parser = argparse.ArgumentParser(prog=prog, description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--dat", type=Path, default=None, help="dlib .dat (default: face_recognition_models')")
    parser.add_argument("--out-dir", type=Path, default=Path("work-cache/embedder"))
    parser.add_argument("--precision", action="append", choices=["f32", "f16", "dyn8", "int8"],
                        help="repeatable; default f32 and f16")
    parser.add_argument("--faces", type=Path, default=None, help="faces folder (people/, strangers/) to measure on")
    parser.add_argument("--limit", type=int, default=400, help="photos to measure on")
    parser.add_argument("--calibration", type=int, default=200, help="chips for int8 calibration (not measured on)")
    parser.add_argument("--agreement", type=int, default=0,
                        help="also compare the door's decisions, dlib against the shipped-precision twin, on this many people")
    parser.add_argument("--report", type=Path, default=None, help="write the measurements as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    precisions = args.precision or ["f32", "f16"]
    dat = args.dat or default_dat_path()
    t0 = time.perf_counter()
    net = read_dlib_net(dat)
    print(f"read {dat.name}: {len(net.layers)} layers ({net.count('con')} con, {net.count('affine')} affine, "
          f"{net.count('fc')} fc), {net.num_params():,} parameters, {time.perf_counter() - t0:.1f} s")
    model = build_keras(net)
    report: dict[str, Any] = {"dat": str(dat), "dat_sha256": hashlib.sha256(dat.read_bytes()).hexdigest(),
                              "layers": len(net.layers), "parameters": net.num_params(), "models": {}}
    chips = desc = None
    calib = None
    if args.faces is not None:
        paths = _face_photos(args.faces, args.limit + args.calibration)
        chips, desc, names = extract_chips(paths, args.out_dir / f"chips_{args.limit + args.calibration}.npz")
        calib, chips, desc = chips[-args.calibration:], chips[:-args.calibration], desc[:-args.calibration]
        keras_emb = model.predict(chips.astype(np.float32), batch_size=32, verbose=0)
        report["keras_vs_dlib"] = distance_stats(keras_emb, desc)
        print(f"keras twin vs dlib on {len(chips)} chips: {report['keras_vs_dlib']}")
    for precision in precisions:
        out = args.out_dir / f"face_embedder_{precision}.tflite"
        export_tflite(model, out, precision, calib)
        entry: dict[str, Any] = {"file": str(out), "bytes": out.stat().st_size}
        if chips is not None and desc is not None:
            emb, ms = tflite_embed(out, chips)
            entry.update(distance_stats(emb, desc))
            entry["ms_per_face_1_thread"] = ms
        report["models"][precision] = entry
        print(f"{precision}: {json.dumps(entry)}")
    if chips is not None:
        paths = {p: Path(e["file"]) for p, e in report["models"].items()}
        report["median_ms_per_face_paired"] = paired_timing(paths, chips)
        print("median ms per face, dlib and each twin alternating (LiteRT 1 thread): "
              + json.dumps({k: round(v, 2) for k, v in report["median_ms_per_face_paired"].items()}))
    if args.faces is not None and args.agreement > 0:
        model = args.out_dir / "face_embedder_f16.tflite"
        if "f16" not in report["models"]:
            raise SystemExit("--agreement needs --precision f16")
        report["agreement"] = identity_agreement(args.faces, args.agreement, model=model,
                                                 cache=args.out_dir / f"agreement_{args.agreement}.npz")
        print(f"door decisions, dlib against litert f16: {json.dumps(report['agreement'])}")
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
