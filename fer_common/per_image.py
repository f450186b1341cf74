"""Per-image labels as text, one character per image: how records, job results and the cross-dataset matrix keep
the predictions a paired comparison needs (two models scored on the same images) without growing by more than
a byte per image."""

from __future__ import annotations

import string

import numpy as np

ALPHABET = string.digits + string.ascii_letters  # class 0 is "0", class 10 is "a": up to 62 classes
NOT_SCORED = "."  # an image a model was not scored on (its class has no counterpart among the model's)


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


def encode_correct(correct, scored) -> str:
    """Per image, whether a model got it right ("1") or wrong ("0"), and "." where it was not scored."""
    correct, scored = np.asarray(correct, dtype=bool).ravel(), np.asarray(scored, dtype=bool).ravel()
    if correct.shape != scored.shape:
        raise ValueError(f"one value per image in both: {correct.shape} and {scored.shape}")
    return "".join(
        NOT_SCORED if not kept else "1" if right else "0" for right, kept in zip(correct, scored, strict=True)
    )


def decode_correct(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(scored, correct) boolean arrays from what `encode_correct` wrote."""
    if set(text) - {"0", "1", NOT_SCORED}:
        raise ValueError(f"{sorted(set(text) - {'0', '1', NOT_SCORED})} are not written by encode_correct")
    codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    return codes != ord(NOT_SCORED), codes == ord("1")
