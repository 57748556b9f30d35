"""The model card, assets.extra/MODEL_CARD.md of an export: what the model is, for a person.

What it was trained on (the data folder's dataset.json and reports), the
validation errors it reached (the workdir's metrics.jsonl: the `final` and
`eval` events), the preprocessing in its graph, its signatures with their
input and output names, dtypes and shapes (read from the signatures
themselves), its labels, the config's key fields, and the commands that serve it.
"""
import datetime
import json
import os
import re
import shlex

from keras_alexnet.data import layout

# The config fields worth a line on the card (dotted; absent ones are left out).
KEY_FIELDS = ("model.name", "model.num_classes", "model.image_size", "model.width",
              "model.fc_units", "model.towers", "model.lrn", "model.lrn_bias",
              "model.lrn_per_tower", "model.dropout",
              "model.dropout_scaling", "model.init", "input.normalization", "input.crop",
              "input.lighting_std", "input.resize", "input.jpeg_reencode", "init_from", "freeze",
              "batch_size", "num_epochs", "optimizer.learning_rate",
              "optimizer.momentum", "optimizer.weight_decay", "schedule.patience", "precision",
              "seed")


def checkpoint_step(checkpoint_path):
    """The step in a trainer's checkpoint name (ckpt-<step>), or None."""
    match = re.search(r"ckpt-(\d+)$", str(checkpoint_path or ""))
    return int(match.group(1)) if match else None


def _percent(value):
    return f"{float(value):.2%}" if isinstance(value, (int, float)) else "?"


def error_rows(events, step=None):
    """[(what, images, top-1, top-5)]: the end-of-training passes, the best epoch, the exported one.

    step: the exported checkpoint's; its rows say "this export".
    """
    def mark(e):
        return ", **this export**" if step is not None and e["step"] == step else ""

    rows = []
    for final in [e for e in events if e.get("event") == "final"]:
        when = f"end of training (step {final['step']}{mark(final)}), {final.get('split', '?')}"
        n = final.get("num_images", "?")
        rows.append((f"{when}, 1 patch (centre)", n, final.get("centre_top1_error"),
                     final.get("centre_top5_error")))
        if "ten_crop_top1_error" in final:
            rows.append((f"{when}, 10 patches", n, final["ten_crop_top1_error"],
                         final.get("ten_crop_top5_error")))
    evals = [e for e in events if e.get("event") == "eval" and "top1_error" in e]
    best = min(evals, key=lambda e: e["top1_error"]) if evals else None
    exported = next((e for e in reversed(evals) if e["step"] == step), None)
    for label, e in (("best epoch", best), ("epoch", exported if exported is not best else None)):
        if e is not None:
            rows.append((f"{label} {e.get('epoch', '?')} (step {e['step']}{mark(e)}), validation, "
                         "1 patch (centre)", e.get("num_images", "?"), e["top1_error"],
                         e.get("top5_error")))
    return rows


def _shape(shape):
    return "[" + ", ".join("-1" if d is None else str(d) for d in shape) + "]"


def signature_rows(signatures):
    """[(name, inputs, outputs)] as text, from {name: concrete function}."""
    rows = []
    for name, function in signatures.items():
        args, kwargs = function.structured_input_signature
        specs = {**{spec.name: spec for spec in args}, **kwargs}  # positional: the spec's name
        inputs = ", ".join(f"`{k}` {s.dtype.name} {_shape(s.shape)}" for k, s in sorted(specs.items()))
        outputs = ", ".join(f"`{k}` {t.dtype.name} {_shape(t.shape)}"
                            for k, t in sorted(function.structured_outputs.items()))
        rows.append((name, inputs, outputs))
    return rows


def _get(config, dotted):
    value = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _dataset_lines(data_dir, num_classes, config):
    manifest = layout.read_manifest(data_dir) if data_dir else {}
    lines = [f"- Data folder: `{data_dir}` ({num_classes} classes)"]
    if _get(config, "input.demo"):
        lines.append("- The demo dataset: shapes and textures in random colours that the trainer "
                     "drew (keras_alexnet/data/demo_data.py), not photographs")
    for split, entry in sorted(manifest.get("splits", {}).items()):
        size = layout.split_size(data_dir, split)
        source = entry.get("input_dir") or entry.get("source", "?")
        lines.append(f"- `{split}`: {size if size is not None else entry.get('found', '?')} images, "
                     f"converted by make_tfrecords from {entry.get('source', '?')} `{source}`")
    if manifest.get("resize"):
        lines.append(f"- Stored with the shorter side resized to {manifest['resize']} px, central "
                     f"crop, JPEG quality {manifest.get('quality', '?')}")
    return lines


def _preprocessing_lines(metadata):
    resize, size = metadata.get("resize"), metadata.get("image_size")
    quality = metadata.get("jpeg_quality")
    if metadata.get("normalization") == "channel":
        normalize = "minus the training set's per-channel mean, divided by its per-channel std"
    else:
        normalize = "minus the training set's mean image (the paper's only normalization)"
    reencode = (f", re-encoded as JPEG at quality {quality} as make_tfrecords stored the "
                "training images" if quality else ", not re-encoded")
    if metadata.get("resize_mode") == "warp":
        scale = (f"both sides to {resize} px ignoring the aspect ratio (Caffe's warp, bilinear; "
                 "not the paper's shorter-side resize)")
    else:
        scale = f"shorter side to {resize} px, central {resize}x{resize}"
    return [
        f"In the graph of `serving_default` and `ten_crop`, on each encoded image: decode (JPEG, "
        "PNG, GIF, BMP, WebP; grayscale, CMYK, palette and alpha become RGB, alpha over white), "
        f"{scale}{reencode}, {normalize}; then",
        f"- `serving_default`: the central {size}x{size} patch;",
        f"- `ten_crop`: the four corner and the central {size}x{size} patches and their mirror "
        "images, softmax averaged (the paper's test-time augmentation);",
        f"- `predict_images` takes {size}x{size} patches already preprocessed this way.",
    ]


def serving_commands(model_name, export_dir, version_dir):
    """The shell lines that serve and query the export, every path and name shell-quoted.

    A path with spaces must not split into two arguments, and one holding `$(...)` or
    backquotes must not run anything when the lines are pasted into a shell.
    """
    q = shlex.quote
    # docker's --mount value is comma-separated: a field holding a comma or a quote is
    # written in double quotes, inner quotes doubled (CSV).
    csv = lambda field: f'"{field.replace(chr(34), 2 * chr(34))}"' if set(field) & set(',"') \
        else field  # noqa: E731
    mount = f"type=bind,{csv('source=' + export_dir)},{csv('target=/models/' + model_name)}"
    return ["docker run --rm -p 8500:8500 -p 8501:8501 \\",
            f"    --mount {q(mount)} \\",
            f"    -e {q('MODEL_NAME=' + model_name)} tensorflow/serving",
            f"bin/predict --server=localhost:8500 {q('--model_name=' + model_name)} photo.jpg   # gRPC",
            f"bin/predict --rest=http://localhost:8501 {q('--model_name=' + model_name)} photo.jpg"
            "   # REST",
            f"bin/predict {q('--saved_model=' + version_dir)} photo.jpg   # no server"]


def model_card(signatures, metadata, *, synsets, class_names, model_name, version, export_dir,
               data_dir=None, events=(), workdir=None, now=None):
    """The model card's text.

    signatures: {name: concrete function} of the export; metadata: export.py's metadata dict
    (config, checkpoint, image_size, resize, normalization, jpeg_quality); events: metrics.jsonl.
    """
    config = metadata.get("config", {})
    checkpoint = metadata.get("checkpoint", "?")
    step = checkpoint_step(checkpoint)
    version_dir = os.path.join(os.path.abspath(export_dir), str(version))
    now = now or datetime.datetime.now(datetime.timezone.utc)
    out = [f"# {model_name}, version {version}: AlexNet ({len(synsets)} classes)", "",
           "AlexNet as in Krizhevsky, Sutskever & Hinton, *ImageNet Classification with Deep "
           "Convolutional Neural Networks* (NIPS 2012), trained and exported with keras_alexnet. "
           "A TF Serving model version: `saved_model.pb` and `variables/` hold the network, its "
           "preprocessing, the mean image and the labels; it loads with TensorFlow alone.", "",
           f"- Exported {now:%Y-%m-%d %H:%M} UTC from checkpoint `{checkpoint}`"
           + (f" (step {step})" if step is not None else ""),
           f"- Training workdir: `{workdir}`" if workdir else "- Training workdir: not recorded",
           "", "## Trained on", ""]
    out += _dataset_lines(data_dir, len(synsets), config)
    out += ["", "## Validation errors", ""]
    rows = error_rows(events, step)
    if rows:
        out += ["| when | images | top-1 error | top-5 error |", "|---|---|---|---|"]
        out += [f"| {what} | {n} | {_percent(t1)} | {_percent(t5)} |" for what, n, t1, t5 in rows]
        out += ["", "Each pass through the validation set during training is on the centre "
                "patch; the end of training adds the paper's ten patches. bin/export takes the "
                "best epoch's checkpoint unless told `--checkpoint=latest`."]
    else:
        out.append("Not recorded (no metrics.jsonl in the training workdir).")
    out += ["", "## Preprocessing", ""] + _preprocessing_lines(metadata)
    out += ["", "## Signatures", "", "| signature | inputs | outputs |", "|---|---|---|"]
    out += [f"| `{name}` | {inputs} | {outputs} |" for name, inputs, outputs in
            signature_rows(signatures)]
    out += ["", f"`-1` is the batch. `classes`, `scores`, `synsets` and `class_names` are the top "
            f"{min(5, len(synsets))}, best first; `probabilities` covers every class, and "
            "`logits` are fc8's outputs before the softmax (for calibration and ensembles; "
            "`ten_crop`'s are the mean of its ten crops' logits).", "",
            "## Labels", "",
            f"{len(synsets)} classes; `labels.txt` beside this card lists them all "
            "(index, WordNet ID, name). The first:", ""]
    out += [f"{i}. `{s}` {n}" for i, (s, n) in enumerate(zip(synsets[:5], class_names[:5]))]
    if len(synsets) > 5:
        out.append("...")
    out += ["", "## Training config (key fields)", "", "| field | value |", "|---|---|"]
    for field in KEY_FIELDS:
        value = _get(config, field)
        if value is not None:
            out.append(f"| `{field}` | `{json.dumps(value)}` |")
    out += ["", "The whole config is in `metadata.json` beside this card.", "",
            "## Serving it", "", "```",
            *serving_commands(model_name, os.path.abspath(export_dir), version_dir),
            "```", "",
            "REST by hand: `POST /v1/models/" + model_name + ":predict` with "
            '`{"instances": [{"b64": "<base64 of the file>"}]}` (add `"signature_name": '
            '"ten_crop"` for the ten patches). TF Serving replays `tf_serving_warmup_requests` '
            "beside this card before it answers. To merge concurrent requests into batches, add "
            "`--enable_batching --batching_parameters_file=FILE` to its command line, FILE a "
            "copy of `batching_parameters.txt` beside this card (its comments say what to "
            "change for a CPU or a GPU host).", ""]
    return "\n".join(out)
