"""A SavedModel loaded the way TF Serving loads it: into a TF1 session, by its graph alone.

TF Serving's model server does not call `tf.saved_model.load`. It imports the
MetaGraphDef into a graph, runs the restore op of the SavedModel's saver in a
session, and runs each signature by the tensor names of its SignatureDef
(C++ `LoadSavedModel`; `saved_model_cli run` and the C API's
`TF_LoadSessionFromSavedModel` do the same). Python's object graph, which
`tf.saved_model.load` uses to tie variables to functions, plays no part. A
SavedModel that runs here runs under those loaders.

This module imports only TensorFlow and NumPy (and tensorflow_text, when it is
installed, for the SentencePiece ops), so it runs in a process without the rest
of lm_keras.
"""

import contextlib
import dataclasses

import numpy as np
import tensorflow as tf

SERVE_TAG = "serve"


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature: its tensor in the graph, dtype and rank."""

    tensor_name: str
    dtype: np.dtype
    rank: int | None  # None: any rank


@dataclasses.dataclass(frozen=True)
class Signature:
    """A SignatureDef: named inputs and outputs."""

    inputs: dict
    outputs: dict


class SessionModel:
    """One SavedModel version in its own graph and session, as TF Serving holds it.

    Args:
        path: the version folder (holding saved_model.pb).
        tags: the MetaGraphDef's tags; TF Serving loads "serve".

    Attributes:
        signatures: {name: Signature}, without the internal `__saved_model_init_op`.

    Example:

    >>> model = SessionModel("exports/shakespeare/1")
    >>> model.run("serving_default", {"prompt": np.array([b"ROMEO:"], object)})["continuation"]
    array([b'...'], dtype=object)
    """

    def __init__(self, path, tags=(SERVE_TAG,)):
        with contextlib.suppress(ImportError):
            import tensorflow_text  # noqa: F401  (registers the SentencePiece ops some exports use)

        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, list(tags), str(path))
        self.signatures = {
            name: Signature(_specs(signature.inputs), _specs(signature.outputs))
            for name, signature in meta_graph.signature_def.items()
            if not name.startswith("__")
        }

    def run(self, signature, inputs):
        """Runs a signature: {input name: array} in, {output name: numpy array} out.

        Every input of the signature must be given (as TF Serving's REST API asks).
        Errors raised in the graph come out as `tf.errors.OpError`s.
        """
        spec = self.signatures[signature]
        feed = {spec.inputs[name].tensor_name: np.asarray(value) for name, value in inputs.items()}
        fetches = {name: output.tensor_name for name, output in spec.outputs.items()}
        return self.session.run(fetches, feed_dict=feed)

    def close(self):
        self.session.close()


def _specs(tensor_infos):
    return {
        name: TensorSpec(
            info.name,
            np.dtype(tf.as_dtype(info.dtype).as_numpy_dtype),
            None if info.tensor_shape.unknown_rank else len(info.tensor_shape.dim),
        )
        for name, info in tensor_infos.items()
    }
