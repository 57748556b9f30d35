"""AlexNet on imagenette (10 ImageNet classes, 9,469 training / 3,925 validation photos) on a CPU.

    bin/make_tfrecords --source=imagefolder --input_dir=imagenette/train --output_dir=/data/imagenette-144 --split=train --resize=144
    bin/make_tfrecords --source=imagefolder --input_dir=imagenette/val --output_dir=/data/imagenette-144 --split=validation --resize=144
    bin/train --config=configs/imagenette.py --config.input.data_dir=/data/imagenette-144 --workdir=/runs/imagenette

The paper's network, recipe and augmentation, scaled to what a 2-core CPU
trains in about a quarter of an hour (docs/RESULTS.md section 4 has the runs and times); the study
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
- 24 epochs with the plateau schedule's default patience of 2 (lr / 10 after two
  epochs without a better validation error), where earlier versions ran 8 epochs at
  patience 1 and still improved at their end. Chosen on 20 other Tiny-ImageNet classes
  (64-pixel photos) validated on 50 of each class's own training images, not on
  imagenette's or Tiny-ImageNet's validation set; docs/RESULTS.md section 4 has that
  run's curve (the first division of the rate is what the extra epochs buy) and the
  check on held-out classes. About 3x the old run's time; on an AVX2-only CPU in
  float32 (about 4x slower) --config.num_epochs=8 is the short version.
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
    config.num_epochs = 24
    config.checkpoint.every_steps = 200
    config.log_every_steps = 20
    return config
