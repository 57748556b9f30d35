"""The paper's recipe on ILSVRC-2012 (results on its validation set, the test labels being private).

    bin/make_tfrecords --source=ilsvrc2012 --input_dir=/data/ILSVRC2012 --output_dir=/data/ilsvrc2012-tfr --split=train
    bin/make_tfrecords --source=ilsvrc2012 --input_dir=/data/ILSVRC2012 --output_dir=/data/ilsvrc2012-tfr --split=validation
    bin/train --config=configs/paper_ilsvrc2012.py --config.input.data_dir=/data/ilsvrc2012-tfr --workdir=/runs/alexnet-2012

Batch 128, SGD momentum 0.9, weight decay 0.0005 inside the momentum on the
weights (not the biases), lr 0.01 divided by 10 when the validation error stops
improving (at most 3 times), 90 epochs, dropout 0.5, random 227 crops + flips +
PCA lighting, the paper's N(0, 0.01) init. Reference: 40.7% / 18.2% top-1/top-5
error (one CNN, ILSVRC-2012 validation).
"""
from keras_alexnet import config as config_lib


def get_config():
    # The base config is the paper's recipe; only the data is specific.
    config = config_lib.get_config()
    config.input.eval_split = "validation"
    config.input.test_split = ""
    return config
