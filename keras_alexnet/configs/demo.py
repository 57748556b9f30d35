"""The demo: a procedurally generated 10-class dataset, trained and evaluated in a few minutes on a CPU.

    bin/train --config=configs/demo.py --workdir=/tmp/alexnet-demo

With input.data_dir empty, training first draws 3,000 training and 750
validation JPEGs (shapes and textures in random colours, keras_alexnet/data/demo_data.py)
into a temporary folder and converts them with make_tfrecords into
WORKDIR/demo_data; then it trains with the progress bar and ends with the
centre-crop and ten-crop validation errors (chance: 90% top-1 error).
"""
from keras_alexnet import config as config_lib


def get_config():
    config = config_lib.get_config()
    config.input.demo = True
    config.input.demo_images_per_class = 300
    config.input.demo_image_size = 76  # stored size; random 67-pixel crops leave room to move
    config.model.num_classes = 10
    config.model.image_size = 67  # the smallest AlexNet input (pool5 is 1x1)
    # Half the kernels and 256-unit fc layers: the same eight layers, small
    # enough for a laptop CPU to fit ten easy classes in a few minutes.
    config.model.width = 0.5
    config.model.fc_units = 256
    # The paper's N(0, 0.01) init stays at chance for epochs on small data;
    # Glorot starts learning at once (see configs/imagenette.py).
    config.model.init = "glorot"
    config.batch_size = 64
    config.optimizer.learning_rate = 0.01 * 64 / 128  # the paper's rate, scaled to the batch
    config.eval.batch_size = 100
    config.num_epochs = 15
    config.schedule.patience = 1  # short run: react to the first flat epoch
    config.checkpoint.every_steps = 100
    config.log_every_steps = 10
    config.precision = "float32"
    return config
