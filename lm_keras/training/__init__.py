"""Training: the trainer, its schedule, devices, and the model-directory contract.

The trainer itself imports TensorFlow; import it from `lm_keras.training.trainer`.
This package's __init__ stays light so command lines can check flags first.
"""
