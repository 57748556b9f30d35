"""The study's variants: each of the paper's claims as a few config overrides of one baseline.

A variant removes (or swaps) one thing the paper says helps. `expected_sign` is the sign
of (variant error - baseline error) the paper predicts: +1 everywhere, since each variant
takes away a feature the paper credits with lowering the error. `paper_delta` is the
paper's own number for that difference in points of (top-1, top-5) error, where it gives one.

Overrides are dotted config fields; a callable value is computed from the baseline config
(one_tower_half halves whatever width the baseline has).
"""
import dataclasses

from keras_alexnet.config import ConfigError


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    section: str
    claim: str
    overrides: dict
    paper_delta: tuple = None  # (top-1, top-5) points the paper reports, variant minus baseline
    expected_sign: int = 1


VARIANTS = {v.name: v for v in [
    Variant("baseline", "-", "the baseline config unchanged", {}),
    Variant("tanh", "3.1, Fig. 1",
            "ReLUs train several times faster than tanh units (6x to 25% training error on CIFAR-10)",
            {"model.activation": "tanh"}),
    Variant("no_lrn", "3.3", "local response normalization lowers the error",
            {"model.lrn": False}, paper_delta=(1.4, 1.2)),
    Variant("non_overlapping_pool", "3.4",
            "overlapping pooling (3x3, stride 2) beats non-overlapping (2x2, stride 2)",
            {"model.overlapping_pool": False}, paper_delta=(0.4, 0.3)),
    # The paper compared two towers with one tower of half the kernels per conv layer
    # (conv5 kept whole); 'one_tower' is the same-total-width comparison, where
    # one tower has more connections (conv2/4/5 see every map), so it may well win.
    Variant("one_tower", "3.2",
            "two towers vs one tower of the same total width (the paper did not run this one)",
            {"model.towers": 1}),
    Variant("one_tower_half", "3.2",
            "two towers beat one tower with half the kernels in each conv layer "
            "(here conv5 is halved too: model.width scales every conv layer)",
            {"model.towers": 1, "model.width": lambda base: base.model.width * 0.5},
            paper_delta=(1.7, 1.2)),
    Variant("no_lighting", "4.1", "PCA lighting noise cuts top-1 error by over 1%",
            {"input.lighting_std": 0.0}, paper_delta=(1.0, None)),
    Variant("no_dropout", "4.2",
            "without dropout the network overfits substantially (a larger train/validation gap)",
            {"model.dropout": 0.0}),
    # Section 4.1's scheme is the random patches and their reflections together: one change,
    # two fields (the central patch is the one evaluation uses; lighting stays on).
    Variant("centre_crop_no_flip", "4.1",
            "without random crops and flips the network suffers from substantial overfitting "
            "(a larger train/validation gap)",
            {"input.crop": "centre", "input.flip": False}),
    Variant("no_weight_decay", "5",
            "weight decay is not merely a regularizer: it reduces the model's training error",
            {"optimizer.weight_decay": 0.0}),
    # conv4 rather than conv3: without it conv5 takes conv3's 384 maps as it took conv4's, so
    # every remaining kernel keeps its shape (model.build_alexnet's drop_conv).
    Variant("no_conv4", "7",
            "removing any of the middle layers results in a loss of about 2% top-1 "
            "(here conv4; conv5 takes conv3's 384 maps)",
            {"model.drop_conv": "conv4"}, paper_delta=(2.0, None)),
]}

# Claims judged on more than the validation error (analysis.py): the training error for
# weight decay, the train/validation gap for the regularizers.
GAP_VARIANTS = ("no_dropout", "centre_crop_no_flip", "no_lighting", "no_weight_decay")

DEFAULT_VARIANTS = list(VARIANTS)


def check_names(names):
    """The variant names, checked; an unknown one is named with the known ones, in one sentence."""
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ConfigError(f"--variants: unknown variant {', '.join(map(repr, unknown))}; "
                          f"known: {', '.join(VARIANTS)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"--variants: a variant is listed twice in {','.join(names)}")
    if not names:
        raise ConfigError("--variants: no variant given")
    return list(names)


def run_name(variant, seed):
    return f"{variant}-seed{seed}"


def make_config(base, variant, seed):
    """The baseline config with the variant's overrides and both seeds set; a new ConfigDict."""
    config = base.copy_and_resolve_references()
    for field, value in VARIANTS[variant].overrides.items():
        *parents, leaf = field.split(".")
        section = config
        for part in parents:
            section = section[part]
        if leaf not in section:
            raise ConfigError(f"variant {variant!r}: the config has no field {field}")
        section[leaf] = value(base) if callable(value) else value
    config.seed = int(seed)
    config.model.seed = int(seed)
    return config
