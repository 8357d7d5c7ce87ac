import keras
import pytest


@pytest.fixture
def mixed_bfloat16():
    """Runs a test under the global mixed_bfloat16 policy, then restores the previous one."""
    previous = keras.config.dtype_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
