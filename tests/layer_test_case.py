"""`run_layer_test`: the checks every public layer and model passes, after keras-hub's.

One call per layer (or per call mode of a layer) in that layer's test module:

    run_layer_test(
        MultiHeadSelfAttention,
        init_kwargs=dict(num_heads=2, key_dim=4),
        input_data=np.zeros((2, 5, 8), "float32"),
        call_kwargs=dict(use_causal_mask=True, return_attention_scores=True),
        expected_output_shape=((2, 5, 8), (2, 2, 5, 5)),
        expected_num_weights=4,
        expected_num_params=4 * 8 * 8 + 3 * 8 + 8,
        expected_mixed_dtypes=("bfloat16", "float32"),
        tmp_path=tmp_path,
    )
"""

import inspect

import keras
import numpy as np


def run_layer_test(
    cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    expected_num_weights,
    expected_num_params,
    tmp_path,
    call_kwargs=None,
    expected_mixed_dtypes=None,
    run_training_check=True,
):
    """Checks a layer or model class the way keras-hub's `TestCase.run_layer_test` does.

    1. Config: `get_config` names every constructor argument, and `from_config` and
       Keras's (de)serialization by registered name give the same config back.
    2. A functional call on `keras.Input`s gives `expected_output_shape` (batch `None`),
       and the functional model gives it with the batch on `input_data`.
    3. Weights: exactly `expected_num_weights` variables and `expected_num_params`
       parameters, all trainable.
    4. A `.keras` file loaded with `safe_mode=True` gives identical outputs.
    5. One `fit` step (SGD, MSE to random targets) changes every trainable weight.
    6. Under `mixed_bfloat16` the eager and the functional outputs have
       `expected_mixed_dtypes` (default: bfloat16 for every output) and the weights
       stay float32.

    Args:
        cls: the layer or model class.
        init_kwargs: dict, constructor arguments.
        input_data: a NumPy array (the first call argument), or a dict of call argument
            name -> array for several tensor arguments.
        expected_output_shape: a shape tuple, or a tuple of shapes for several outputs.
        expected_num_weights: int, the number of weight variables.
        expected_num_params: int, the number of parameters.
        tmp_path: a folder for the `.keras` file.
        call_kwargs: dict of the call's other (non-tensor) arguments.
        expected_mixed_dtypes: a dtype name, or a tuple of them, for the outputs under
            `mixed_bfloat16`.
        run_training_check: False for a layer without weights.
    """
    call_kwargs = call_kwargs or {}
    inputs = input_data if isinstance(input_data, dict) else {None: input_data}
    single = not isinstance(expected_output_shape[0], (tuple, list))
    expected_shapes = [expected_output_shape] if single else list(expected_output_shape)

    def call(layer, tensors):
        args = [tensors[None]] if None in tensors else []
        return layer(*args, **{k: v for k, v in tensors.items() if k is not None}, **call_kwargs)

    def as_list(outputs):
        return list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]

    def functional(layer):
        symbolic = {
            name: keras.Input(shape=x.shape[1:], dtype=str(x.dtype), name=name or "inputs")
            for name, x in inputs.items()
        }
        outputs = as_list(call(layer, symbolic))
        model = keras.Model(list(symbolic.values()), outputs)
        return model, outputs

    feed = list(inputs.values())

    # 1. Config round trip.
    layer = cls(**init_kwargs)
    config = layer.get_config()
    arguments = [
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    assert not set(arguments) - config.keys(), f"get_config misses {set(arguments) - config.keys()}"
    assert cls.from_config(config).get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is cls and revived.get_config() == config

    # 2. Functional call and its output shapes.
    model, symbolic = functional(layer)
    assert [tuple(t.shape) for t in symbolic] == [(None, *s[1:]) for s in expected_shapes]
    outputs = [np.asarray(o) for o in as_list(model(feed))]
    assert [o.shape for o in outputs] == [tuple(s) for s in expected_shapes]

    # 3. The exact weights.
    assert len(layer.weights) == expected_num_weights, [w.path for w in layer.weights]
    assert layer.count_params() == expected_num_params
    assert len(layer.trainable_weights) == expected_num_weights

    # 4. .keras file in safe mode.
    path = tmp_path / f"{cls.__name__}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert [type(x) for x in loaded.layers if isinstance(x, cls)] == [cls]
    for reloaded, output in zip(as_list(loaded(feed)), outputs, strict=True):
        np.testing.assert_array_equal(reloaded, output)  # the same computation on the same weights

    # 5. One fit step reaches every weight.
    if run_training_check:
        targets = [np.random.RandomState(0).randn(*o.shape).astype("float32") for o in outputs]
        before = [w.numpy() for w in layer.trainable_weights]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=False)
        model.fit(feed, targets, batch_size=len(feed[0]), epochs=1, verbose=0)
        unchanged = [w.path for w, b in zip(layer.trainable_weights, before) if np.array_equal(w.numpy(), b)]
        assert before and not unchanged, f"fit left {unchanged} unchanged"

    # 6. Mixed precision.
    mixed = cls(**init_kwargs, dtype="mixed_bfloat16")
    expected_dtypes = expected_mixed_dtypes or "bfloat16"
    if isinstance(expected_dtypes, str):
        expected_dtypes = (expected_dtypes,) * len(expected_shapes)
    eager = as_list(call(mixed, inputs))
    assert [keras.backend.standardize_dtype(o.dtype) for o in eager] == list(expected_dtypes)
    _, symbolic = functional(mixed)
    assert [keras.backend.standardize_dtype(t.dtype) for t in symbolic] == list(expected_dtypes)
    assert {w.dtype for w in mixed.weights} <= {"float32"}
