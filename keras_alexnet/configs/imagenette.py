"""AlexNet on imagenette (10 ImageNet classes, 9,469 training / 3,925 validation photos) on a CPU.

    bin/make_tfrecords --source=imagefolder --input_dir=imagenette/train --output_dir=/data/imagenette-144 --split=train --resize=144
    bin/make_tfrecords --source=imagefolder --input_dir=imagenette/val --output_dir=/data/imagenette-144 --split=validation --resize=144
    bin/train --config=configs/imagenette.py --config.input.data_dir=/data/imagenette-144 --workdir=/runs/imagenette

The paper's network, recipe and augmentation, scaled to what a 2-core CPU
trains in about a quarter of an hour (docs/RESULTS.md has the runs); the study
(bin/study) uses it as its baseline:
- images stored at 144x144 (the paper's 256, scaled by 0.56) and random 107-pixel
  crops (the paper's 227/256 scaled alike would be 128; 107 leaves more jitter):
  about 4.5x fewer multiply-adds than 227 pixels; pool5 is 2x2 instead of 6x6.
- Glorot init instead of the paper's N(0, 0.01): on imagenette the paper's init
  stays at chance for the first epochs (the tiny weights and unit biases take
  hundreds of steps to break symmetry), which a one-hour budget cannot afford.
- fc6/fc7 with 1024 units instead of 4096: ten classes and 9.5k images do not
  need 37M fully connected weights, and fewer weights fit sooner.
- batch 64: twice the paper's number of updates per epoch; lr 0.005, the paper's
  0.01 scaled linearly with the batch (as configs/multi_gpu.py does upwards).
- 8 epochs (1,176 steps): the budget, not a tuned number (the 12 of earlier
  versions took 45 minutes on a shared AVX2 CPU in float32).
- the plateau schedule with patience 1: a short run must react to the first
  epoch without improvement.
- precision 'auto' (as every config): mixed_bfloat16 on CPUs with native bfloat16
  (about 1.5x float32 there), float32 elsewhere.
"""
from keras_alexnet import config as config_lib


def get_config():
    config = config_lib.get_config()
    config.model.num_classes = 10
    config.model.image_size = 107
    config.model.init = "glorot"
    config.model.fc_units = 1024
    config.batch_size = 64
    config.optimizer.learning_rate = 0.01 * 64 / 128  # linear scaling with the batch
    config.eval.batch_size = 128
    config.num_epochs = 8
    config.schedule.patience = 1
    config.checkpoint.every_steps = 200
    config.log_every_steps = 20
    return config
