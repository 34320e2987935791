"""The expression CNN: a compact VGG-style net for 48x48 grey faces (Keras; training only)."""

from __future__ import annotations

import keras
from keras import layers

from kiosk.vision.preprocess import CLASSES, INPUT_SIZE


def _conv_block(x, filters: int, convs: int, dropout: float, name: str):
    for i in range(convs):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i + 1}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i + 1}")(x)
        x = layers.ReLU(name=f"{name}_relu{i + 1}")(x)
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    return layers.Dropout(dropout, name=f"{name}_drop")(x) if dropout else x


def build_model(widths: tuple[int, ...] = (32, 64, 128, 256), convs_per_block: int = 2) -> keras.Model:
    """Input float32 N x 48 x 48 x 1 with pixel values 0..255; output N x 7 softmax over CLASSES.

    Scaling to 0..1 happens inside the model, so the int8 export takes raw pixels with
    scale 1/255 and zero point -128 (int8 = pixel - 128).
    """
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="face")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    for i, width in enumerate(widths):
        convs = 1 if i == 0 else convs_per_block
        x = _conv_block(x, width, convs, dropout=0.1 + 0.05 * i, name=f"block{i + 1}")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.4, name="head_drop")(x)
    outputs = layers.Dense(len(CLASSES), activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="kiosk_expression")
