"""Per-image labels as text, one character per image: how records and job results keep the predictions a paired
comparison needs (two models scored on the same images) without growing by more than a byte per image."""

from __future__ import annotations

import string

import numpy as np

ALPHABET = string.digits + string.ascii_letters  # class 0 is "0", class 10 is "a": up to 62 classes


def encode_labels(labels) -> str:
    """Class indices (0..61) as one character each."""
    values = np.asarray(labels, dtype=np.int64).ravel()
    if values.size and (values.min() < 0 or values.max() >= len(ALPHABET)):
        raise ValueError(f"class indices must lie in 0..{len(ALPHABET) - 1} to be written one character each")
    return "".join(ALPHABET[value] for value in values)


def decode_labels(text: str) -> np.ndarray:
    """The class indices `encode_labels` wrote."""
    lookup = {character: index for index, character in enumerate(ALPHABET)}
    try:
        return np.array([lookup[character] for character in text], dtype=np.int64)
    except KeyError as error:
        raise ValueError(f"{error.args[0]!r} is not a class written by encode_labels") from error
