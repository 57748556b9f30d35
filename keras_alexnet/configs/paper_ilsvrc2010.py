"""The paper's recipe on ILSVRC-2010, the year of its headline table (test labels are public).

    bin/make_tfrecords --source=ilsvrc2010 --input_dir=/data/ILSVRC2010 --output_dir=/data/ilsvrc2010-tfr --split=train
    bin/make_tfrecords --source=ilsvrc2010 --input_dir=/data/ILSVRC2010 --output_dir=/data/ilsvrc2010-tfr --split=validation
    bin/make_tfrecords --source=ilsvrc2010 --input_dir=/data/ILSVRC2010 --output_dir=/data/ilsvrc2010-tfr --split=test
    bin/train --config=configs/paper_ilsvrc2010.py --config.input.data_dir=/data/ilsvrc2010-tfr --workdir=/runs/alexnet-2010

The schedule follows the validation error; the test split is evaluated once at
the end, with the paper's ten crops. Reference: 37.5% / 17.0% top-1/top-5 test
error (one CNN, ten patches).
"""
from keras_alexnet import config as config_lib


def get_config():
    config = config_lib.get_config()
    config.input.eval_split = "validation"
    config.input.test_split = "test"
    return config
