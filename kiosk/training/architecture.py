"""The expression CNN's shape, shared by the PyTorch net (training) and its Keras twin (int8 export)."""

from __future__ import annotations

DEFAULT_WIDTHS: tuple[int, ...] = (32, 64, 128, 192)  # channels per conv block; 834k parameters
CONVS_PER_BLOCK = 2  # 3x3 convs in each block after the first (which has one)
HEAD_DROPOUT = 0.4
PIXEL_SCALE = 1.0 / 255.0  # the net's first step: pixels 0..255 -> 0..1
BN_EPSILON = 1e-3  # Keras' default
BN_MOMENTUM_KERAS = 0.99  # = PyTorch momentum 0.01


def block_dropout(index: int) -> float:
    """Dropout after conv block index (0-based): 0.1, 0.15, 0.2, ..."""
    return 0.1 + 0.05 * index


def convs_in_block(index: int, convs_per_block: int = CONVS_PER_BLOCK) -> int:
    """Number of 3x3 convs in block index (0-based): the first block has one."""
    return 1 if index == 0 else convs_per_block
