"""Figure 4's nearest neighbours in fc7 space, streamed so that any split size fits in memory.

fc7 is the last hidden layer (its 4,096 units after the ReLU; fc_units in small
configs), computed in evaluation mode on the centre patch that make_dataset
(training=False) gives, with the run's mean image. Distances are Euclidean.

Memory: the validation split's features are kept, in float16 (ILSVRC-2012's
50,000 x 4,096 take 0.4 GB; float32 only if an activation overflows float16).
The training split is never held: it streams batch by batch through
RunningTopK, which computes each batch's squared distances to the validation
features `query_chunk` validation images at a time (one [query_chunk, batch]
float32 block) and merges them with the k best kept so far per validation image
(tf.math.top_k over the kept k and the batch's candidates). What stays is
[num_val, k] distances and indices and one int32 label per training image
(5 MB for 1.28M images).
"""
import keras
import numpy as np
import tensorflow as tf

from keras_alexnet import progress
from keras_alexnet.data import input_pipeline, layout, preprocessing
from keras_alexnet.data import stats as stats_lib

FLOAT16_MAX = float(np.finfo(np.float16).max)


class RunningTopK:
    """The k nearest of everything added so far, for every query; ties go to the earlier index."""

    def __init__(self, queries, k, query_chunk=2048):
        self.queries, self.k, self.query_chunk = queries, k, query_chunk
        n = len(queries)
        self.query_norms = np.concatenate(
            [np.sum(np.square(queries[s:s + query_chunk], dtype=np.float32), axis=1)
             for s in range(0, n, query_chunk)]) if n else np.zeros(0, np.float32)
        self.distances = np.full((n, k), np.inf, np.float32)  # squared, ascending
        self.indices = np.full((n, k), -1, np.int64)
        self.seen = 0

    def add(self, batch):
        """Candidates [B, D], numbered from the number of candidates added before."""
        batch = tf.convert_to_tensor(batch, tf.float32)
        batch_norms = tf.reduce_sum(tf.square(batch), axis=1)
        numbers = tf.range(self.seen, self.seen + tf.shape(batch, out_type=tf.int64)[0])
        for start in range(0, len(self.queries), self.query_chunk):
            end = start + self.query_chunk
            queries = tf.convert_to_tensor(self.queries[start:end], tf.float32)
            squared = (self.query_norms[start:end, None] - 2 * tf.matmul(queries, batch, transpose_b=True)
                       + batch_norms[None, :])
            distances = tf.concat([self.distances[start:end], tf.maximum(squared, 0.0)], axis=1)
            rows = min(end, len(self.queries)) - start
            indices = tf.concat([self.indices[start:end],
                                 tf.broadcast_to(numbers, [rows, len(numbers)])], axis=1)
            # top_k keeps the lower position among equal values: kept entries (earlier
            # candidates) come first, so ties resolve to the earlier index, as a stable sort would.
            negative, positions = tf.math.top_k(-distances, k=self.k)
            self.distances[start:end] = -negative.numpy()
            self.indices[start:end] = tf.gather(indices, positions, batch_dims=1).numpy()
        self.seen += int(batch.shape[0])

    def result(self):
        """(indices [Q, k], Euclidean distances [Q, k]), nearest first."""
        if self.seen < self.k:
            raise ValueError(f"only {self.seen} candidates for k={self.k} nearest neighbours")
        return self.indices, np.sqrt(self.distances)


def fc7_batches(run, split, batch_size, *, stream=None, title=None):
    """(fc7 features float32 [B, D], labels [B]) of a split, in make_dataset's evaluation order."""
    dataset = input_pipeline.from_input_config(run.config, split, batch_size, False,
                                               data_dir=run.data_dir, repeat=False)
    fc7 = keras.Model(run.model.inputs, run.model.get_layer("fc7").output)
    embed = tf.function(lambda images: fc7(images, training=False))
    bar = progress.ProgressBar(layout.split_size(run.data_dir, split), title=title or f"fc7 {split}",
                               mode="auto" if stream else "none", every_seconds=10.0,
                               stream=stream)
    done = 0
    for images, labels in dataset:
        features = embed(images).numpy()
        done += len(features)
        bar.update(done)
        yield features, labels.numpy()
    bar.update(done, final=True)


def collect(batches):
    """(features [N, D] float16, or float32 if float16 would overflow; labels int32 [N])."""
    features, labels, dtype = [], [], np.float16
    for batch, batch_labels in batches:
        if dtype == np.float16 and np.abs(batch).max(initial=0.0) > FLOAT16_MAX:
            dtype = np.float32
            features = [f.astype(np.float32) for f in features]
        features.append(batch.astype(dtype))
        labels.append(batch_labels.astype(np.int32))
    if not features:
        raise ValueError("no examples in the split")
    return np.concatenate(features), np.concatenate(labels)


def same_class_precision(neighbour_labels, labels):
    """The share of each image's neighbours [N, k] that have its label, averaged over images."""
    return float(np.mean(neighbour_labels == np.asarray(labels)[:, None]))


def chance_precision(train_labels, val_labels, num_classes):
    """The expected same-class share of neighbours drawn at random: sum_c train(c) * val(c)."""
    train = np.bincount(train_labels, minlength=num_classes) / max(len(train_labels), 1)
    val = np.bincount(val_labels, minlength=num_classes) / max(len(val_labels), 1)
    return float(np.sum(train * val))


def nearest_neighbours(run, k, *, train_split, eval_split, batch_size=128, query_chunk=2048,
                       stream=None):
    """Every validation image's k nearest training images in fc7 space.

    Returns dict(indices [V, k], distances [V, k], val_labels [V], train_labels [T]).
    """
    val_features, val_labels = collect(fc7_batches(run, eval_split, batch_size, stream=stream))
    top = RunningTopK(val_features, k, query_chunk)
    train_labels = []
    for features, labels in fc7_batches(run, train_split, batch_size, stream=stream,
                                        title=f"fc7 {train_split}, {k} nearest"):
        top.add(features)
        train_labels.append(labels.astype(np.int32))
    if not train_labels:
        raise ValueError(f"no examples in the {train_split} split")
    indices, distances = top.result()
    return dict(indices=indices, distances=distances, val_labels=val_labels,
                train_labels=np.concatenate(train_labels))


def read_records_at(data_dir, split, indices, label_offset=0):
    """(index, encoded image, label) of the split's records at `indices`, in make_dataset's order.

    The records come from make_dataset's own reader (input_pipeline.read_records in
    evaluation order), so an index means what it means in a pass over make_dataset; the
    reading stops after the last one wanted.
    """
    files = input_pipeline.list_shards(layout.shard_pattern(data_dir, split))
    wanted = tf.constant(sorted(set(int(i) for i in indices)), tf.int64)
    records = input_pipeline.read_records(files, training=False)
    found = records.enumerate().filter(lambda i, _: tf.reduce_any(tf.equal(i, wanted)))
    for i, record in found.take(len(wanted)):
        image_bytes, label = input_pipeline.parse_example(record, label_offset)
        yield int(i), image_bytes, int(label)


def display_patch(image_bytes, image_size, paper_size):
    """uint8 [S, S, 3]: the centre patch the network sees, before the mean is subtracted."""
    patch, _ = preprocessing.decode_centre_patch(image_bytes, image_size, None, paper_size)
    return np.clip(np.round(patch.numpy()), 0, 255).astype(np.uint8)


def read_centre_patches(data_dir, split, indices, *, image_size, label_offset=0):
    """{index: (uint8 centre patch [S, S, 3], label)} of records numbered in make_dataset's order.

    The caller checks the labels against the feature pass's.
    """
    paper_size = int(stats_lib.load_stats(data_dir).mean_image.shape[0])
    return {i: (display_patch(image_bytes, image_size, paper_size), label)
            for i, image_bytes, label in read_records_at(data_dir, split, indices, label_offset)}
