"""Neamtiu (2023): Keras 4-conv CNN on FER2013, the source's protocol beside a clean one, and a `fer` reference."""
