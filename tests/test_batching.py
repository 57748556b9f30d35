"""serving/batching.py: the export's batching_parameters.txt for TF Serving's --enable_batching."""
import os

import numpy as np
import pytest
import tensorflow as tf

import fixtures as fx
from keras_alexnet.serving import batching, export, export_folder, warmup


def test_export_writes_batching_parameters_that_fit_its_signatures(tiny_export):
    path = export_folder.batching_path(tiny_export["path"])
    assert path == os.path.join(tiny_export["path"], "assets.extra", "batching_parameters.txt")
    fields = batching.read_batching_parameters(path)
    assert fields == {"max_batch_size": batching.DEFAULT_MAX_BATCH_SIZE,
                      "batch_timeout_micros": 0,
                      "num_batch_threads": os.cpu_count(),
                      "max_enqueued_batches": os.cpu_count()}
    # Every signature takes a batch of any size, so a batch of max_batch_size fits it...
    loaded = tf.saved_model.load(tiny_export["path"])
    for name, signature in loaded.signatures.items():
        for spec in signature.structured_input_signature[1].values():
            assert spec.shape[0] is None, name
    # ...and no warmup request is larger (TF Serving refuses those, failing the load).
    logs = warmup.read_warmup_file(export_folder.warmup_path(tiny_export["path"]))
    sizes = [t.tensor_shape.dim[0].size for log in logs
             for t in log.predict_log.request.inputs.values()]
    assert max(sizes) == batching.largest_request(logs) > 1
    assert max(sizes) <= fields["max_batch_size"]


def test_max_batch_size_covers_a_larger_warmup_request(tmp_path):
    model = fx.tiny_model(**fx.MODEL_KWARGS)
    stats = np.zeros((fx.RESIZE, fx.RESIZE, 3), np.float32)
    module = export.ServingModule(model, stats, fx.SYNSETS, fx.NAMES)
    images = [fx.encode(fx.picture(80, 90, seed=i)) for i in range(70)]
    path = export.save(module, str(tmp_path / "models"), warmup_images=images)
    fields = batching.read_batching_parameters(export_folder.batching_path(path))
    assert fields["max_batch_size"] == 70


def test_every_value_is_explained_in_a_comment(tiny_export):
    with open(export_folder.batching_path(tiny_export["path"])) as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[i - 1].startswith("#"), line  # each field under its reasons
    text = "\n".join(lines)
    for words in ("CPU", "GPU", "--enable_batching", "INVALID_ARGUMENT", "allowed_batch_sizes"):
        assert words in text


@pytest.mark.parametrize("text,message", [
    ("max_batch_size { value: 32 }\nmax_batch_sise { value: 1 }\n", "max_batch_sise"),
    ("max_batch_size: 32\n", "max_batch_size"),  # a wrapper message, not a bare integer
    ("num_batch_threads { value: -x }\n", "num_batch_threads"),
])
def test_reader_refuses_what_tf_serving_would(tmp_path, text, message):
    path = tmp_path / "batching_parameters.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match="not a TF Serving BatchingParameters") as e:
        batching.read_batching_parameters(str(path))
    assert str(path) in str(e.value) and message in str(e.value)


def test_reader_reads_every_field_of_the_message(tmp_path):
    path = tmp_path / "b.txt"
    path.write_text("max_batch_size { value: 128 }\nbatch_timeout_micros { value: 5000 }\n"
                    "max_enqueued_batches { value: 100 }\nnum_batch_threads { value: 8 }\n"
                    "thread_pool_name { value: 'batch' }\nallowed_batch_sizes: [32, 64, 128]\n"
                    "pad_variable_length_inputs: true\n"
                    "enable_large_batch_splitting { value: true }\n"
                    "max_execution_batch_size { value: 64 }\n")
    assert batching.read_batching_parameters(str(path)) == {
        "max_batch_size": 128, "batch_timeout_micros": 5000, "max_enqueued_batches": 100,
        "num_batch_threads": 8, "thread_pool_name": "batch", "allowed_batch_sizes": [32, 64, 128],
        "pad_variable_length_inputs": True, "enable_large_batch_splitting": True,
        "max_execution_batch_size": 64}


def test_the_model_card_says_how_to_turn_batching_on(tiny_export):
    with open(export_folder.card_path(tiny_export["path"])) as f:
        card = f.read()
    assert "`--enable_batching --batching_parameters_file=FILE`" in card
    assert f"`{export_folder.BATCHING_FILENAME}` beside this card" in card
