"""What `bin/benchmark request_memory` measures: one serving_default request's peak memory per image.

    bin/benchmark request_memory --saved_model=runs/bench/models/alexnet

Each image (CASES: a photo, small PNGs of extreme sizes, a PNG at the decoded bound
of data/image_limits.py) is sent alone, as a batch of one, in a fresh Python process
that has loaded the SavedModel and served one ordinary request first: the peak RSS
(ru_maxrss) after that request and after the measured one, and their difference,
is what the image added. A refused request reports its error's first line. Only
the SavedModel is loaded, so an export written by older code is measured alike.
"""
import io
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

_CHILD = r"""
import json, resource, sys, time
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
photo, image = open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
serve(image_bytes=tf.constant([photo]))
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
before, start, error = peak(), time.perf_counter(), None
try:
    serve(image_bytes=tf.constant([image]))
except tf.errors.InvalidArgumentError as e:
    lines = e.message.strip().splitlines()
    error = next((l for l in lines if "assertion failed" in l), lines[0])[:300]
print(json.dumps({"peak_rss_mib_before": round(before), "peak_rss_mib_after": round(peak()),
                  "added_mib": round(peak() - before),
                  "seconds": round(time.perf_counter() - start, 2), "refused": error}))
"""


def _png(width, height, mode="L"):
    buffer = io.BytesIO()
    Image.new(mode, (width, height), 128).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _photo():
    y, x = np.mgrid[0:375, 0:500]
    rgb = np.stack([x * 255 // 499, y * 255 // 374, (x + y) * 255 // 873], -1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


CASES = {  # name: a function giving the encoded image
    "photo 500x375 JPEG": _photo,
    "1x60000 PNG": lambda: _png(1, 60000),
    "1x2000 PNG": lambda: _png(1, 2000),
    "8192x8192 PNG (the decoded bound)": lambda: _png(8192, 8192, "RGB"),
    "12000x12000 PNG": lambda: _png(12000, 12000),
}


def request_memory(saved_model, cases=None, scratch=None):
    """{case: {bytes, peak_rss_mib_before, peak_rss_mib_after, added_mib, seconds, refused}}."""
    from keras_alexnet.benchmarks import serving
    from keras_alexnet.serving import export_folder
    try:
        path = export_folder.resolve_saved_model(saved_model)
    except FileNotFoundError:  # as `serve`: a random full-size export (memory ignores weights)
        path, _ = serving.random_export(saved_model)
    results = {}
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        photo = os.path.join(tmp, "photo.jpg")
        with open(photo, "wb") as f:
            f.write(_photo())
        for name in cases or CASES:
            data = CASES[name]()
            image = os.path.join(tmp, "image")
            with open(image, "wb") as f:
                f.write(data)
            out = subprocess.run([sys.executable, "-c", _CHILD, path, photo, image],
                                 capture_output=True, text=True, check=False,
                                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
            lines = out.stdout.strip().splitlines()
            results[name] = {"bytes": len(data), **(json.loads(lines[-1]) if lines and
                                                    out.returncode == 0 else
                                                    {"failed": f"exit {out.returncode}: "
                                                               f"{out.stderr[-300:]}"})}
    return results
