"""The paper's recipe on N GPUs or hosts: data parallel, global batch and learning rate scaled.

The argument after the colon is "GPUS" (one host) or "HOSTSxGPUS":

    # one host, 8 GPUs (MirroredStrategy):
    bin/train --config=configs/multi_gpu.py:8 --config.input.data_dir=/data/ilsvrc2012-tfr --workdir=/runs/a8
    # two hosts with 4 GPUs each (MultiWorkerMirroredStrategy); on every host, with its own
    # TF_CONFIG (or under SLURM: srun bin/train ...):
    bin/train --config=configs/multi_gpu.py:2x4 --config.input.data_dir=/data/ilsvrc2012-tfr --workdir=/shared/runs/a2x4

Each replica keeps the paper's 128 images a step, so the global batch is
128 x replicas; the learning rate grows with it (0.01 x replicas), the linear
scaling rule of Goyal et al. 2017 ("Accurate, Large Minibatch SGD"): with k
times the batch, one step must move the weights as far as k of the paper's
steps did. Above ~8 replicas (batch 1024) that rule needs a warm-up the paper
never had; stay at or below 8 replicas for the paper's behaviour.
"""
from keras_alexnet import config as config_lib

PER_REPLICA_BATCH = 128  # the paper's batch, per GPU
PAPER_LEARNING_RATE = 0.01


def get_config(arg="2"):
    hosts, gpus = (int(v) for v in arg.split("x")) if "x" in arg else (1, int(arg))
    replicas = hosts * gpus
    config = config_lib.get_config()
    config.batch_size = PER_REPLICA_BATCH * replicas
    config.eval.batch_size = PER_REPLICA_BATCH * replicas
    config.optimizer.learning_rate = PAPER_LEARNING_RATE * replicas  # linear scaling rule
    config.distribution.strategy = "multi_worker" if hosts > 1 else "mirrored"
    config.precision = "auto"  # mixed_float16 on GPUs
    return config
