"""Dikshit et al. (CMU): shallow CNN vs ResNet18 on AffectNet-8."""
