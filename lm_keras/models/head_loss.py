"""The output head fused with its cross-entropy: the training loss without the (N, V) logits."""

import math

from keras import ops

# Logits computed at once: chunks of ceil(2**24 / V) tokens, 64 MB of float32 (GPT-2: 334 tokens).
CHUNK_LOGITS = 1 << 24


def head_loss(hidden, matrix, labels, weights, *, vocab_axis=0, softcap=0.0, matrix_gradient=True):
    """`sum_i w_i CE(softmax(h_i W), y_i)`, its gradients computed chunk by chunk in the forward pass.

    The language model's output projection and its cross-entropy in one operation (the "fused
    linear cross-entropy" of Liger-Kernel, Hsu et al., 2024). Plain autodiff holds the whole
    `(N, V)` logits, their softmax and their gradient at once: 200 MB each for one 1,024-token
    sequence of GPT-2 in float32. Here the tokens go in chunks of `ceil(2**24 / V)` (64 MB of
    logits): each chunk's logits give its loss and, at once, its share of the gradients,
    `dh = P W^T` and `dW += h^T P` with `P = w (softmax - onehot)`; its logits are then dropped.
    So the forward pass does the backward's work too (the same products autodiff does, none
    recomputed), and the gradient function only scales the results by the upstream gradient
    (1, or the loss scale): call it only where the gradient will be taken.

    Args:
        hidden: `(N, d)` float32, the final norm's output.
        matrix: the projection's float32 weights: `(V, d)` with `vocab_axis=0` (a tied
            embedding), `(d, V)` with `vocab_axis=1` (an untied head).
        labels: `(N,)` int32 targets.
        weights: `(N,)` float32 weight of each token's loss (0 for padding; `1 / count` for a mean).
        vocab_axis: which axis of `matrix` is the vocabulary.
        softcap: `C > 0` caps the logits as `C tanh(logits / C)` first; 0 is off.
        matrix_gradient: False skips the `(V, d)` gradient of `matrix` (a frozen head: LoRA);
            its gradient is then None.

    Returns:
        The scalar weighted sum of the tokens' losses, in nats.
    """
    vocab = matrix.shape[vocab_axis]
    count, width = ops.shape(hidden)[0], hidden.shape[-1]
    chunk = math.ceil(CHUNK_LOGITS / vocab)
    chunks = (count + chunk - 1) // chunk
    if isinstance(count, int):  # static: equal chunks, the least padding
        chunk = math.ceil(count / chunks)
    pad = chunks * chunk - count  # padded tokens weigh 0: no loss, no gradient

    def chunked(t):
        t = ops.pad(t, [(0, pad)] + [(0, 0)] * (len(t.shape) - 1))
        return ops.reshape(t, (chunks, chunk, *t.shape[1:]))

    y_chunks, w_chunks = chunked(labels), chunked(weights)

    @ops.custom_gradient
    def fused(hidden, matrix):
        # The gradients are computed here, so no tape may record (and differentiate) this loop.
        h_chunks, matrix = chunked(ops.stop_gradient(hidden)), ops.stop_gradient(matrix)

        def body(i, state):
            loss, d_hidden, d_matrix = state
            h, y, w = h_chunks[i], y_chunks[i], w_chunks[i]  # (c, d), (c,), (c,)
            logits = ops.matmul(h, ops.transpose(matrix) if vocab_axis == 0 else matrix)  # (c, V)
            if softcap:
                capped = ops.tanh(logits / softcap)
                logits = softcap * capped
            log_z = ops.logsumexp(logits, axis=-1)  # (c,)
            target = ops.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
            loss = loss + ops.sum(w * (log_z - target))
            p = (ops.exp(logits - log_z[:, None]) - ops.one_hot(y, vocab)) * w[:, None]  # dloss/dlogits
            if softcap:
                p = p * (1.0 - ops.square(capped))
            dh = ops.matmul(p, matrix if vocab_axis == 0 else ops.transpose(matrix))  # (c, d)
            d_hidden = ops.slice_update(d_hidden, (i, 0, 0), dh[None])
            if matrix_gradient:
                product = (
                    ops.matmul(ops.transpose(p), h) if vocab_axis == 0 else ops.matmul(ops.transpose(h), p)
                )
                d_matrix = d_matrix + product
            return loss, d_hidden, d_matrix

        start = (
            ops.zeros((), "float32"),
            ops.zeros((chunks, chunk, width), "float32"),
            ops.zeros(matrix.shape if matrix_gradient else (), "float32"),
        )
        if isinstance(chunks, int):  # a static shape: the chunks unrolled, as XLA compiles them anyway
            state = start
            for i in range(chunks):
                state = body(i, state)
            loss, d_hidden, d_matrix = state
        else:  # a dynamic one. (Not the default: in TensorFlow's graph mode this loop's sums
            # differ between runs by float32 rounding, so --deterministic runs need static shapes.)
            loss, d_hidden, d_matrix = ops.fori_loop(0, chunks, body, start)
        d_hidden = ops.reshape(d_hidden, (chunks * chunk, width))[:count]

        def grad(upstream):
            return d_hidden * upstream, (d_matrix * upstream if matrix_gradient else None)

        return loss, grad

    return fused(hidden, matrix)
