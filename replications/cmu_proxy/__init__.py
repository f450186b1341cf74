"""Dikshit et al. (CMU), proxy run on FER2013: shallow CNN vs ResNet18, and the difference between them."""
