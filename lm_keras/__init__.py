"""lm_keras: train, understand and serve small attention and LSTM language models.

Importing the package is cheap: TensorFlow loads only when a subpackage that needs it
is imported, so the command lines can check their flags first.
"""

__version__ = "0.1.0"
