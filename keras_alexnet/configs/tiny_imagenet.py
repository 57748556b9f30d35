"""AlexNet on Tiny-ImageNet-200 (200 ImageNet classes, 100,000 training / 10,000 validation photos, 64x64).

    head -n 200 tiny-imagenet-200/wnids.txt > wnids200.txt   # GitHub's rangeetpan/IMagenet copy lists 202
    bin/make_tfrecords --source=tiny_imagenet --input_dir=tiny-imagenet-200 --wnids=wnids200.txt \
        --output_dir=/data/tiny_imagenet_148 --split=train --resize=148
    bin/make_tfrecords --source=tiny_imagenet --input_dir=tiny-imagenet-200 --wnids=wnids200.txt \
        --output_dir=/data/tiny_imagenet_148 --split=validation --resize=148
    bin/train --config=configs/tiny_imagenet.py --config.input.data_dir=/data/tiny_imagenet_148 \
        --workdir=/runs/tiny_imagenet
    # the paper's unit biases instead of 0.1; a 20-step smoke run of a small network:
    bin/train --config=configs/tiny_imagenet.py:paper_init ...
    bin/train --config=configs/tiny_imagenet.py:local --config.input.data_dir=... --workdir=/tmp/tiny

The paper's network and recipe (two towers, LRN per tower, overlapping pooling, 4096-unit
fc6/fc7, the paper's dropout; batch 128, lr 0.01, momentum 0.9, weight decay 5e-4 through
the momentum, lr / 10 on a validation plateau at most 3 times; N(0, 0.01) weights; random
crops, flips, PCA lighting, the mean image subtracted). What changes, and why:

- image size: records at 148 pixels (the 64-pixel photos upscaled 2.3x with Pillow's
  bicubic, once, by make_tfrecords) and random 131-pixel crops: the paper's 227-of-256
  geometry scaled by 0.58, so a crop keeps 89% of the side (57 of the 64 original pixels,
  the usual 56-of-64 Tiny-ImageNet crop) and the ten crops move as far as the paper's.
  At 131 pixels conv1's stride of 4 steps 1.7 original pixels and pool5 is 3x3 (6x6 at
  227); the step costs about a third of a 227-pixel one (cost goes with conv1's 31x31
  output positions against 55x55), which buys about 3x the epochs in the same hours. 64
  pixels cannot feed the network at all (conv1 stride 4 and three poolings need at least
  67), and 227 would upscale 3.5x for no more information at 3x the cost. Upscaled records
  cost disk (several times the 64-pixel JPEGs) but each step decodes only its crop window
  and resizes nothing (records of the original bytes, --resize=0, would be decoded whole
  and upscaled on every read, on the same two cores as the training).
- init_bias = 0.1 where the paper has 1 (conv2, conv4, conv5, fc6, fc7), as Caffe's
  bvlc_alexnet and configs/imagenette_paper.py. At 200 classes the softmax is about 20x less
  stiff than at imagenette's 10, and the paper's biases no longer make the logits oscillate;
  but they still cost fc7: its output is almost all bias, the same for every image, and SGD shrinks
  it in the first hundred steps, taking most of fc7's units below zero for every image,
  where they stay (docs/RESULTS.md, "Tiny-ImageNet-200", has the probe). With 0.1 fc7's output
  starts ten times smaller and no unit died in the probe's steps. ':paper_init' keeps 1.
- num_epochs = 40 (781 steps each, 31,240 in all; the paper took ~450,000 steps over 90
  passes of 1.2M images): the budget (a few hours on an idle 2-core CPU with native
  bfloat16; docs/RESULTS.md has the rate measured), not a tuned number; the plateau
  schedule (patience 2) decides when to divide the rate. num_epochs may change when a run
  resumes (--config.num_epochs=N with the same command).
- checkpoints every 400 steps (about twice an epoch), 2 kept (about 0.25 GB each): the run
  is resumed across sessions by re-running the same command.
- precision 'auto': mixed_bfloat16 on CPUs with native bfloat16, float32 on others.
"""
from keras_alexnet import config as config_lib

ARGS = ("recommended", "paper_init", "local")


def get_config(arg="recommended"):
    if arg not in ARGS:
        raise ValueError(f"configs/tiny_imagenet.py: unknown argument {arg!r}; use one of {ARGS}")
    config = config_lib.get_config()
    config.model.num_classes = 200
    config.model.image_size = 131  # random crops of the 148-pixel records (--resize=148)
    config.model.init_bias = 1.0 if arg == "paper_init" else 0.1
    config.num_epochs = 40
    config.eval.batch_size = 100
    config.checkpoint.every_steps = 400
    config.checkpoint.max_to_keep = 2
    config.log_every_steps = 50
    if arg == "local":  # a smoke run: the data and the recipe end to end, a small network
        config.model.width = 0.25
        config.model.fc_units = 256
        config.max_steps = 20
        config.num_epochs = 1
        config.log_every_steps = 5
        config.checkpoint.every_steps = 10
    return config
