"""The evaluation operations that training, bin/evaluate and the export share.

The project promises that the validation error printed during training, the one
bin/evaluate prints and the export's predictions agree; each operation has one
implementation here so that they cannot drift apart. (The crops themselves,
crop_centre and ten_crops, are data/preprocessing.py's, imported by the export's graph.)
"""
import tensorflow as tf


def class_probabilities(logits_fn, images):
    """float32 [B, C]: the softmax of logits_fn(images), in float32 whatever the model computes in.

    images [B, S, S, 3], or crops [B, N, S, S, 3] (the paper's ten patches): then
    the N softmax outputs of each image are averaged, as in the paper.
    """
    if images.shape.rank != 5:
        return tf.nn.softmax(tf.cast(logits_fn(images), tf.float32), axis=-1)
    shape = tf.shape(images)
    crops = images.shape[1] if images.shape[1] is not None else shape[1]
    flat = tf.reshape(images, tf.concat([[-1], shape[2:]], 0))
    probabilities = tf.nn.softmax(tf.cast(logits_fn(flat), tf.float32), axis=-1)
    classes = probabilities.shape[-1] if probabilities.shape[-1] is not None \
        else tf.shape(probabilities)[-1]
    return tf.reduce_mean(tf.reshape(probabilities, [-1, crops, classes]), axis=1)


def logits_and_probabilities(logits_fn, images):
    """(logits, probabilities), float32 [B, C] each, from one pass of logits_fn.

    The probabilities are class_probabilities'. With crops [B, N, S, S, 3] the logits
    are the mean of the N crops' logits (the probabilities stay the mean of their
    softmax outputs, the paper's average; the two are not each other's softmax).
    """
    if images.shape.rank != 5:
        logits = tf.cast(logits_fn(images), tf.float32)
        return logits, tf.nn.softmax(logits, axis=-1)
    shape = tf.shape(images)
    crops = images.shape[1] if images.shape[1] is not None else shape[1]
    logits = tf.cast(logits_fn(tf.reshape(images, tf.concat([[-1], shape[2:]], 0))), tf.float32)
    classes = logits.shape[-1] if logits.shape[-1] is not None else tf.shape(logits)[-1]
    logits = tf.reshape(logits, [-1, crops, classes])
    return tf.reduce_mean(logits, axis=1), tf.reduce_mean(tf.nn.softmax(logits, axis=-1), axis=1)


def ensemble_probabilities(member_probabilities):
    """[B, C]: the mean of several networks' class probabilities [B, C] (each already the mean
    over its crops): the paper's ensembles (Sec. 6) average the softmax outputs."""
    return tf.reduce_mean(tf.stack([tf.convert_to_tensor(p, tf.float32)
                                    for p in member_probabilities]), axis=0)


def top_k_hits(scores, labels, k):
    """bool [B]: whether each label is among the k highest of scores [B, C], ties counted as misses.

    A label is a hit when fewer than k other classes score at least as high as
    it does, i.e. when at least C - k classes score strictly lower. All-equal
    scores (a dead network) are therefore misses, where tf.math.in_top_k would
    count them as hits; a NaN score of the label is a miss too.
    """
    scores = tf.convert_to_tensor(scores)
    labels = tf.cast(labels, tf.int32)
    num_classes = tf.shape(scores)[-1]
    label_scores = tf.gather(scores, labels, batch_dims=1)[:, None]
    lower = tf.reduce_sum(tf.cast(scores < label_scores, tf.int32), axis=-1)
    return lower >= num_classes - tf.minimum(k, num_classes)
