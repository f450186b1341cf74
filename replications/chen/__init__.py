"""Chen (2024): LeNet-like CNN on CK+48 with RMSprop and 5-fold cross-validation."""
