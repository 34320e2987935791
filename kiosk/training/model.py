"""The Keras twin of net.ExpressionNet, used only for the int8 TFLite export (training runs in PyTorch)."""

from __future__ import annotations

import keras
from keras import layers

from kiosk.training import architecture as arch
from kiosk.vision.preprocess import CLASSES, INPUT_SIZE


def _conv_block(x, filters: int, convs: int, dropout: float, name: str):
    for i in range(convs):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i + 1}")(x)
        x = layers.BatchNormalization(momentum=arch.BN_MOMENTUM_KERAS, epsilon=arch.BN_EPSILON,
                                      name=f"{name}_bn{i + 1}")(x)
        x = layers.ReLU(name=f"{name}_relu{i + 1}")(x)
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    return layers.Dropout(dropout, name=f"{name}_drop")(x) if dropout else x


def build_model(
    widths: tuple[int, ...] = arch.DEFAULT_WIDTHS, convs_per_block: int = arch.CONVS_PER_BLOCK
) -> keras.Model:
    """Input float32 N x 48 x 48 x 1 with pixel values 0..255; output N x 7 softmax over CLASSES.

    Scaling to 0..1 happens inside the model; the int8 export folds it into the first conv, so the
    exported model takes raw pixels (int8 = pixel - 128, scale 1).
    """
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="face")
    x = layers.Rescaling(arch.PIXEL_SCALE, name="scale")(inputs)
    for i, width in enumerate(widths):
        x = _conv_block(x, width, arch.convs_in_block(i, convs_per_block), arch.block_dropout(i),
                        name=f"block{i + 1}")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(arch.HEAD_DROPOUT, name="head_drop")(x)
    outputs = layers.Dense(len(CLASSES), activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="kiosk_expression")


def keras_twin(net) -> keras.Model:
    """The Keras model with net's weights (a net.ExpressionNet): same outputs, softmax included."""
    model = build_model(net.widths, net.convs_per_block)
    convs = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    for keras_conv, (conv, norm) in zip(convs, net.conv_norm_pairs(), strict=True):
        keras_conv.set_weights([conv.weight.detach().cpu().numpy().transpose(2, 3, 1, 0)])
        model.get_layer(keras_conv.name.replace("_conv", "_bn")).set_weights(
            [t.detach().cpu().numpy() for t in (norm.weight, norm.bias, norm.running_mean, norm.running_var)])
    model.get_layer("scores").set_weights([net.classifier.weight.detach().cpu().numpy().T,
                                           net.classifier.bias.detach().cpu().numpy()])
    return model
