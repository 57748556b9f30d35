"""Top-1 and top-5 error of an export, through its own signatures (bin/evaluate --saved_model).

The export is fed the records' encoded bytes, the path a served request takes
(serving_default, or ten_crop for the paper's ten patches); counting, the
progress bar and the table are runs/evaluate.py's, shared with a checkpoint's
evaluation. On make_tfrecords' output the two see the same pixels, so their
errors agree (runs/evaluate.py says why).
"""
import sys

import tensorflow as tf

from keras_alexnet.data import checks, input_pipeline, layout
from keras_alexnet.runs import evaluate as run_evaluate
from keras_alexnet.serving import export_folder


def evaluate_saved_model(saved_model, data, *, ten_crop=False, batch_size=64, stream=sys.stderr):
    """run_evaluate.Result of an export on the TFRecords matching `data`, through its signatures."""
    path = export_folder.resolve_saved_model(saved_model)
    loaded = tf.saved_model.load(path)
    metadata = export_folder.read_metadata(loaded)
    run_evaluate.check_labels(data, loaded.synsets.numpy(), f"the export {path}", stream)
    signature = loaded.signatures["ten_crop" if ten_crop else "serving_default"]
    offset = int(metadata.get("label_offset", 0))
    files = input_pipeline.list_shards(data)
    checks.check_evaluation_data(files, f"--data {data}", offset, len(loaded.synsets.numpy()),
                                 f"the exported run's, in {path}")
    dataset = tf.data.TFRecordDataset(files)
    dataset = dataset.map(lambda r: input_pipeline.parse_example(r, offset)).batch(batch_size)
    batches = ((signature(image_bytes=images)["probabilities"].numpy(), labels.numpy())
               for images, labels in dataset)
    return run_evaluate.accumulate(batches, f"export {path}, {run_evaluate.patches_name(ten_crop)}",
                                   stream, layout.shards_size(files), data)
