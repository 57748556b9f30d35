"""Fine-tuning the imagenette network onto 20 Tiny-ImageNet classes, against the same network from scratch.

The data: the first 20 Tiny-ImageNet WNIDs in sorted order (n01443537 ... n01984695,
none of them an imagenette class), their 500 training images each and the 50
validation images each that val/val_annotations.txt assigns them, copied into an
image folder and stored at imagenette's 144 pixels (Tiny-ImageNet's 64-pixel images
upscaled, so that the imagenette network's 107-pixel crops see the same scale):

    T=/data/tiny-imagenet-200; W=$(ls $T/train | sort | head -20)
    for w in $W; do mkdir -p tiny20/train/$w tiny20/val/$w; cp $T/train/$w/images/*.JPEG tiny20/train/$w/; done
    awk 'NR==FNR {k[$1]; next} ($2 in k) {print $1, $2}' <(printf '%s\\n' $W) $T/val/val_annotations.txt |
        while read f w; do cp $T/val/images/$f tiny20/val/$w/; done
    bin/make_tfrecords --source=imagefolder --input_dir=tiny20/train --output_dir=/data/tiny20-144 --split=train --resize=144
    bin/make_tfrecords --source=imagefolder --input_dir=tiny20/val --output_dir=/data/tiny20-144 --split=validation --resize=144

The source: a finished imagenette run (configs/imagenette.py), e.g. /runs/imagenette.
The four runs (2 seeds each; the same steps, data order and schedule):

    for s in 0 1; do
      bin/train --config=configs/finetune_tiny20.py --config.input.data_dir=/data/tiny20-144 --config.init_from=/runs/imagenette --config.seed=$s --config.model.seed=$s --workdir=/runs/tiny20-finetune-$s
      bin/train --config=configs/finetune_tiny20.py --config.input.data_dir=/data/tiny20-144 --config.seed=$s --config.model.seed=$s --workdir=/runs/tiny20-scratch-$s
    done
    for r in finetune-0 finetune-1 scratch-0 scratch-1; do bin/report --workdir=/runs/tiny20-$r --out=/runs/tiny20-$r/report; done

Each run's metrics.jsonl has the validation error per epoch (the curves); report.json
and curves.png per run. ':frozen' trains fc6-fc8 only on conv1-conv5 copied from
the source (a third arm, optional).

What changes from configs/imagenette.py, and why:
- num_classes = 20: fc8 is new (init_from_skip defaults to fc8 when the class counts
  differ); conv1-fc7 are copied from the source, whose network options are the same
  (the options that change a weight's function must be, or init_from refuses).
- The recipe is imagenette's unchanged for both arms (lr 0.005, batch 64, 24 epochs,
  plateau patience 2), so that the only difference is the initialization. A lower
  learning rate is the usual choice for fine-tuning; it is not used here, to keep
  the comparison to one variable.
- The mean image and PCA statistics are tiny20's (the config's data folder), in both
  arms: the network is fine-tuned on the images it will see.
"""
from keras_alexnet.configs import imagenette as _imagenette


def get_config(arg=None):
    config = _imagenette.get_config()
    config.model.num_classes = 20
    if arg == "frozen":
        config.freeze = ["conv1", "conv2", "conv3", "conv4", "conv5"]
    elif arg:
        raise ValueError(f"configs/finetune_tiny20.py: unknown variant {arg!r}; only 'frozen'")
    return config
