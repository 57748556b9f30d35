"""bin/import_weights: Caffe's bvlc_alexnet (or any Caffe AlexNet) as a run folder.

    bin/import_weights --caffe_prototxt=deploy.prototxt --caffemodel=bvlc_alexnet.caffemodel \
        --mean=ilsvrc_2012_mean.npy --synsets=synset_words.txt --workdir=runs/bvlc_alexnet

Writes WORKDIR as bin/train leaves a run (config.json, best/, checkpoints/, and data/
with labels.txt and the mean image): bin/evaluate, bin/export and bin/report take it as
they take a trained run. --mean: Caffe's 3x256x256 BGR mean (ilsvrc_2012_mean.npy, from
Caffe's python/caffe/imagenet/, or imagenet_mean.binaryproto from caffe_ilsvrc12.tar.gz);
--synsets: synset_words.txt from the same archive. The official bvlc_alexnet.caffemodel
is recognised by its SHA-1. keras_alexnet/weights/caffe_import.py says what the folder holds.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags  # noqa: E402

from keras_alexnet.cli import run_app  # noqa: E402

_PROTOTXT = flags.DEFINE_string("caffe_prototxt", None, "The network: Caffe's deploy.prototxt "
                                "(current `layer` or legacy `layers` form).")
_CAFFEMODEL = flags.DEFINE_string("caffemodel", None, "The weights: a binary .caffemodel.")
_MEAN = flags.DEFINE_string("mean", None, "Caffe's mean image, 3xRxR BGR: a .npy "
                            "(ilsvrc_2012_mean.npy) or a .binaryproto (imagenet_mean.binaryproto).")
_SYNSETS = flags.DEFINE_string("synsets", None, "The classes in label order: 'wnid name' lines "
                               "(synset_words.txt).")
_WORKDIR = flags.DEFINE_string("workdir", None, "The run folder to write (new, or an empty folder).")
flags.mark_flags_as_required(["caffe_prototxt", "caffemodel", "mean", "synsets", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from keras_alexnet.weights import caffe_import
    try:
        caffe_import.import_caffe(_PROTOTXT.value, _CAFFEMODEL.value, _MEAN.value, _SYNSETS.value,
                                  _WORKDIR.value)
    except (ValueError, FileNotFoundError) as e:
        sys.stderr.write(f"bin/import_weights: error: {e}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write(f"\nbin/import_weights: interrupted; nothing was written to "
                         f"{_WORKDIR.value}\n")
        sys.exit(130)
    print(f"next: bin/export --workdir={_WORKDIR.value} --export_dir=models/alexnet")


def run():
    run_app(main, __name__, __doc__)


if __name__ == "__main__":
    run()
