"""Shared helpers for the course book: the MNIST data switch and the convolution figures."""
