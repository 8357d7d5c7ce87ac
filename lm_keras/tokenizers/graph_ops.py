"""TensorFlow ops shared by the in-graph tokenizers (stock ops only: servable by TF Serving)."""

import tensorflow as tf


def as_ragged_ids(ids, vocab_size):
    """`ids` (RaggedTensor or dense (B, N), any int dtype) as a RaggedTensor of int32 ids.

    Raises tf.errors.InvalidArgumentError when run on an id outside [0, vocab_size).
    """
    if not isinstance(ids, tf.RaggedTensor):
        ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
    if ids.shape.rank != 2:
        raise ValueError(f"detokenize takes ids of shape (B, N); received shape {ids.shape}")
    flat = tf.cast(ids.flat_values, tf.int32)
    message = f"detokenize: token ids must be in [0, {vocab_size})"
    with tf.control_dependencies(
        [
            tf.debugging.assert_non_negative(flat, message=message),
            tf.debugging.assert_less(flat, tf.constant(vocab_size, tf.int32), message=message),
        ]
    ):
        flat = tf.identity(flat)
    return ids.with_flat_values(flat)


def drop_id(ids, token_id):
    """`ids` (RaggedTensor (B, None)) without every `token_id` (a Python int; None drops nothing)."""
    if token_id is None:
        return ids
    return tf.ragged.boolean_mask(ids, tf.not_equal(ids, token_id))  # (B, None)


def join_parts(part_ids, row_splits, separator_ids):
    """Concatenates the ids of each row's parts, with `separator_ids` between parts.

    Args:
        part_ids: RaggedTensor int32 (P, None), the ids of each part.
        row_splits: int64 (R + 1,), which parts make each row (rows may have none).
        separator_ids: list of ints, inserted between consecutive parts of a row.

    Returns:
        RaggedTensor int32 (R, None).
    """
    row = tf.ragged.row_splits_to_segment_ids(row_splits, out_type=tf.int64)  # (P,)
    row_limits = tf.gather(row_splits[1:], row)  # (P,) one past each part's row's last part
    is_last = tf.equal(tf.range(tf.size(row, out_type=tf.int64)) + 1, row_limits)  # (P,)
    num_separators = tf.reduce_sum(tf.cast(~is_last, tf.int32))
    separators = tf.RaggedTensor.from_row_lengths(  # (P, 0 or len(separator_ids))
        tf.tile(tf.constant(separator_ids, tf.int32), [num_separators]),
        tf.where(is_last, tf.constant(0, tf.int64), len(separator_ids)),
    )
    ids = tf.concat([part_ids, separators], axis=1)  # (P, None)
    return tf.RaggedTensor.from_row_splits(ids, row_splits).merge_dims(1, 2)  # (R, None)


def split_into_chunks(strings, max_chars):
    """Cuts each string into chunks of at most `max_chars` characters, as Python's s[i:i + n].

    Args:
        strings: tf.string (N,).
        max_chars: int.

    Returns:
        A RaggedTensor of tf.string (N, None): ceil(len / max_chars) chunks a string,
        none for an empty one. Invalid UTF-8 raises tf.errors.InvalidArgumentError.
    """
    codepoints = tf.strings.unicode_decode(strings, "UTF-8", errors="strict")  # (N, None)
    lengths = codepoints.row_lengths()  # (N,)
    num_chunks = (lengths + max_chars - 1) // max_chars  # (N,)
    chunk_row = tf.repeat(tf.range(tf.size(lengths, out_type=tf.int64)), num_chunks)  # (C,)
    first_chunk = tf.cumsum(num_chunks, exclusive=True)  # (N,)
    chunk = tf.range(tf.size(chunk_row, out_type=tf.int64))  # (C,)
    index_in_row = chunk - tf.gather(first_chunk, chunk_row)  # (C,)
    chunk_lengths = tf.minimum(
        tf.constant(max_chars, tf.int64), tf.gather(lengths, chunk_row) - index_in_row * max_chars
    )  # (C,)
    chunks = tf.strings.unicode_encode(
        tf.RaggedTensor.from_row_lengths(codepoints.flat_values, chunk_lengths), "UTF-8"
    )  # (C,)
    return tf.RaggedTensor.from_row_lengths(chunks, num_chunks)  # (N, None)
