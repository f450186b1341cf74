"""Hong et al. (2023): a 4-conv + 3-FC CNN on CFD faces, 3 classes, grayscale input, with a bias audit."""
