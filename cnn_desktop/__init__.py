"""cnn-desktop: classify, explain, fine-tune and export convolutional neural networks."""

__version__ = "0.1.0"
