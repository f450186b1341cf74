"""Boyce (MIT ADSP capstone, 2022): FER2013 4 classes, custom CNNs and transfer learning."""
