"""Pre-training then fine-tuning (the paper's Section 6): the Tiny-ImageNet-200 network onto imagenette.

The imagenette photos stored as the Tiny-ImageNet records are (148 pixels, 131-pixel
crops), then the same network and recipe trained on them twice for the same steps: from
a Tiny-ImageNet-200 run's weights (config.init_from; fc8 is new: 10 classes, not 200) and
from the paper's initialization. None of imagenette's 10 classes is among Tiny-ImageNet's
200 (checked against its wnids.txt), so what carries over is features, not classes.

    bin/make_tfrecords --source=imagefolder --input_dir=imagenette/train --output_dir=/data/imagenette-148 --split=train --resize=148
    bin/make_tfrecords --source=imagefolder --input_dir=imagenette/val --output_dir=/data/imagenette-148 --split=validation --resize=148
    for s in 0 1; do
      bin/train --config=configs/pretrained_imagenette.py --config.input.data_dir=/data/imagenette-148 \
          --config.init_from=/runs/tiny_imagenet --config.seed=$s --config.model.seed=$s --workdir=/runs/pretrained-imagenette-$s
      bin/train --config=configs/pretrained_imagenette.py --config.input.data_dir=/data/imagenette-148 \
          --config.seed=$s --config.model.seed=$s --workdir=/runs/scratch-imagenette-$s
    done

What changes from configs/tiny_imagenet.py, and why:

- num_classes = 10 (imagenette's).
- num_epochs = 4 (73 steps each at batch 128): both arms get the same 292 steps, a budget
  that fits beside a running Tiny-ImageNet training on a 2-core CPU; the comparison is of
  where each arm is after the same steps, not of converged accuracy.
- The source's network options (LRN k and alpha, towers, per-tower LRN, pooling, dropout
  scaling) are the recipe's, so init_from copies conv1-fc7 as they are; fc8 is skipped
  (another class count) and starts from the paper's init, as every layer of the scratch arm.
- The mean image and PCA statistics are imagenette's (the config's data folder), in both arms.
- No layer frozen: the whole network is fine-tuned at the recipe's learning rate.
"""
from keras_alexnet.configs import tiny_imagenet


def get_config():
    config = tiny_imagenet.get_config()
    config.model.num_classes = 10
    config.num_epochs = 4
    config.checkpoint.every_steps = 1000
    return config
