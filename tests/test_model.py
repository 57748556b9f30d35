"""The model is the paper's network: shapes, parameters, LRN, towers, init, precision, saving."""
import numpy as np
import pytest
import keras
import tensorflow as tf

from keras_alexnet import layers as layers_lib
from keras_alexnet import model as model_lib
from keras_alexnet.training import steps as steps_lib
from fixtures import tiny_model


PAPER_SHAPES = {
    "conv1": (55, 55, 96), "lrn1": (55, 55, 96), "pool1": (27, 27, 96),
    "conv2": (27, 27, 256), "lrn2": (27, 27, 256), "pool2": (13, 13, 256),
    "conv3": (13, 13, 384), "conv4": (13, 13, 384), "conv5": (13, 13, 256),
    "pool5": (6, 6, 256), "fc6": (4096,), "fc7": (4096,), "fc8": (1000,),
}


@pytest.fixture(scope="module")
def alexnet():
    return model_lib.build_alexnet(seed=0)


def test_parameter_count_is_the_papers(alexnet):
    assert alexnet.count_params() == 60_965_224
    # LRN has no parameters: normalizing within or across towers changes none.
    cross = model_lib.build_alexnet(seed=0, lrn_per_tower=False)
    assert cross.count_params() == 60_965_224


def test_every_stage_has_the_papers_shape(alexnet):
    for name, shape in PAPER_SHAPES.items():
        assert tuple(alexnet.get_layer(name).output.shape[1:]) == shape, name


def test_logits_are_not_softmaxed():
    model = tiny_model(seed=1)
    logits = model(np.random.default_rng(0).normal(0, 50, (4, 67, 67, 3)).astype("float32"))
    assert not np.allclose(np.sum(logits, axis=-1), 1.0)


def _lrn_reference(a, n=5, k=2.0, alpha=1e-4, beta=0.75, divide_alpha_by_n=True):
    """The paper's formula over channels (last axis), in NumPy."""
    scale = alpha / n if divide_alpha_by_n else alpha
    channels = a.shape[-1]
    out = np.empty_like(a)
    for c in range(channels):
        lo, hi = max(0, c - n // 2), min(channels - 1, c + n // 2)
        out[..., c] = a[..., c] / (k + scale * np.sum(a[..., lo:hi + 1] ** 2, axis=-1)) ** beta
    return out


def test_lrn_matches_the_papers_formula_with_alpha_over_n():
    a = np.random.default_rng(0).uniform(0, 300, (2, 3, 3, 11)).astype("float32")
    layer = layers_lib.LocalResponseNormalization()
    np.testing.assert_allclose(layer(a), _lrn_reference(a), rtol=1e-5)
    # The default really is alpha / n: the printed formula (no division) differs.
    assert not np.allclose(layer(a), _lrn_reference(a, divide_alpha_by_n=False), rtol=1e-3)


def test_lrn_literal_paper_alpha_is_one_parameter_away():
    a = np.random.default_rng(1).uniform(0, 300, (1, 2, 2, 7)).astype("float32")
    layer = layers_lib.LocalResponseNormalization(alpha=1e-4)
    np.testing.assert_allclose(layer(a), _lrn_reference(a, divide_alpha_by_n=False), rtol=1e-5)


def test_lrn_bias_is_a_network_option():
    """lrn_bias is the LRN's k in both LRN layers (Caffe's bvlc_alexnet needs k = 1)."""
    model = tiny_model(lrn_bias=1.0, lrn_per_tower=False, seed=1)
    assert [model.get_layer(n).bias for n in ("lrn1", "lrn2")] == [1.0, 1.0]
    assert tiny_model(seed=1).get_layer("lrn1").bias == 2.0
    a = np.random.default_rng(3).uniform(0, 300, (1, 2, 2, 9)).astype("float32")
    np.testing.assert_allclose(model.get_layer("lrn1")(a), _lrn_reference(a, k=1.0), rtol=1e-5)
    assert not np.allclose(model.get_layer("lrn1")(a), _lrn_reference(a), rtol=1e-3)


def test_per_tower_lrn_is_lrn_of_each_half():
    a = np.random.default_rng(2).uniform(0, 300, (2, 3, 3, 16)).astype("float32")
    per_tower = layers_lib.LocalResponseNormalization(towers=2)(a).numpy()
    halves = np.concatenate([_lrn_reference(a[..., :8]), _lrn_reference(a[..., 8:])], axis=-1)
    np.testing.assert_allclose(per_tower, halves, rtol=1e-5)
    np.testing.assert_allclose(layers_lib.LocalResponseNormalization(towers=1)(a),
                               _lrn_reference(a), rtol=1e-5)


@pytest.mark.parametrize("channels", [96, 256])  # conv1's maps (48 a tower), conv2's (128)
def test_cross_tower_lrn_differs_from_per_tower_only_at_the_boundary(channels):
    a = np.random.default_rng(3).uniform(0, 300, (1, 4, 4, channels)).astype("float32")
    per_tower = layers_lib.LocalResponseNormalization(towers=2)(a).numpy()
    across = layers_lib.LocalResponseNormalization(towers=1)(a).numpy()
    differs = np.flatnonzero(np.any(~np.isclose(per_tower, across, rtol=1e-6), axis=(0, 1, 2)))
    half = channels // 2
    # depth_radius 2: the two channels on each side of the boundary see the other tower.
    assert differs.tolist() == [half - 2, half - 1, half, half + 1]


def test_lrn_is_per_tower_by_default_and_plain_with_one_tower():
    towers = lambda **kw: [tiny_model(**kw).get_layer(n).towers  # noqa: E731
                           for n in ("lrn1", "lrn2")]
    assert towers() == [2, 2]  # the paper's: each GPU normalized its own maps
    assert towers(lrn_per_tower=False) == [1, 1]
    assert towers(towers=1) == [1, 1]
    assert towers(towers=1, lrn_per_tower=False) == [1, 1]
    x = np.random.default_rng(4).normal(0, 50, (2, 67, 67, 3)).astype("float32")

    def lrn1(**kw):
        model = tiny_model(seed=3, init="glorot", **kw)
        return keras.Model(model.inputs, model.get_layer("lrn1").output)(x).numpy()

    per_tower, across = lrn1(), lrn1(lrn_per_tower=False)
    assert per_tower.shape[-1] == 12  # 6 maps a tower at width 0.125
    differs = np.flatnonzero(np.any(~np.isclose(per_tower, across, rtol=1e-6), axis=(0, 1, 2)))
    assert differs.tolist() == [4, 5, 6, 7]
    with pytest.raises(ValueError, match="do not split into 2 towers"):
        layers_lib.LocalResponseNormalization(towers=2)(np.ones((1, 2, 2, 5), "float32"))


def test_the_lrn_applies_conv1s_and_conv2s_relu():
    """With LRN and ReLU, conv1 and conv2 have no activation and lrn1/lrn2 apply it: the
    paper's function (conv, ReLU, LRN); activation_output gives the ReLU's maps."""
    model = tiny_model(seed=3, init="glorot")
    assert model.get_layer("conv1").activation.__name__ == "linear"
    assert model.get_layer("conv2").activation is None
    assert model.get_layer("lrn1").relu and model.get_layer("lrn2").relu
    x = np.random.default_rng(6).normal(0, 50, (2, 67, 67, 3)).astype("float32")
    conv1, relu1, lrn1 = keras.Model(model.inputs, [
        model.get_layer("conv1").output, model_lib.activation_output(model, "conv1"),
        model.get_layer("lrn1").output])(x)
    assert np.mean(conv1.numpy() < 0) > 0.2  # pre-activation maps
    np.testing.assert_array_equal(relu1.numpy(), np.maximum(conv1.numpy(), 0))
    plain = layers_lib.LocalResponseNormalization(towers=2)  # relu=False: on relu1 as is
    np.testing.assert_allclose(lrn1.numpy(), plain(relu1, training=False).numpy(), rtol=1e-6)
    for kw in ({"activation": "tanh"}, {"lrn": False}):
        other = tiny_model(**kw)
        assert other.get_layer("conv1").activation.__name__ == kw.get("activation", "relu")
        assert other.get_layer("conv2").activation == kw.get("activation", "relu")
        assert model_lib.activation_output(other, "conv1") is other.get_layer("conv1").output
    assert not tiny_model(activation="tanh").get_layer("lrn1").relu


@pytest.mark.parametrize("name", sorted(model_lib.BUILDERS))
@pytest.mark.parametrize("lrn", [True, False])
def test_every_builder_keeps_the_contract(name, lrn):
    """model.py's contract: the paper's layer names, float32 logits from fc8, fc7 the features,
    and activation_output(model, "convN") the post-ReLU map of every conv stage."""
    model = tiny_model(name=name, lrn=lrn, seed=4, init="glorot")
    names = [layer.name for layer in model.layers]
    learned = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert [n for n in names if n in learned] == learned
    assert model.output is model.get_layer("fc8").output and model.output.dtype == "float32"
    assert model.get_layer("fc8").input.shape[-1] == model.get_layer("fc7").output.shape[-1]
    convs = [f"conv{i}" for i in range(1, 6)]
    probe = keras.Model(model.inputs, [model_lib.activation_output(model, n) for n in convs] +
                        [model.get_layer(n).output for n in convs])
    x = np.random.default_rng(8).normal(0, 50, (2, 67, 67, 3)).astype("float32")
    outputs = [t.numpy() for t in probe(x)]
    for conv, post, layer_output in zip(convs, outputs[:5], outputs[5:]):
        assert post.min() >= 0 and np.mean(post == 0) > 0.05, conv  # a ReLU's output
        np.testing.assert_array_equal(post, np.maximum(layer_output, 0), err_msg=conv)
    # Where the LRN applies the ReLU, the conv layer's own output is pre-activation.
    assert (outputs[5].min() < 0) == lrn


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_lrn_computes_in_float32_under_mixed_precision(policy):
    """The policy's dtype in and out (what pool1 would cast to), tf.nn.lrn's float32 inside."""
    keras.mixed_precision.set_global_policy(policy)
    model = tiny_model()
    lrn1 = model.get_layer("lrn1")
    dtype = policy.split("_")[1]
    assert lrn1.compute_dtype == model.get_layer("conv1").compute_dtype == dtype
    x = tf.cast(np.random.default_rng(0).uniform(0, 500, (2, 5, 5, 12)), dtype)
    parts = tf.split(tf.cast(x, tf.float32), 2, axis=-1)
    expected = tf.cast(tf.concat([tf.nn.local_response_normalization(
        p, 2, 2.0, model_lib.LRN_ALPHA, 0.75) for p in parts], -1), dtype)
    out = lrn1(x, training=False)
    assert out.dtype == dtype
    np.testing.assert_array_equal(tf.cast(out, tf.float32), tf.cast(expected, tf.float32))


def test_initialization_is_the_papers(alexnet):
    ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
    for layer_name in ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]:
        variables = alexnet.get_layer(layer_name).trainable_variables
        biases = [v.numpy() for v in variables if v.path.endswith("bias")]
        kernels = [v.numpy() for v in variables if v.path.endswith("kernel")]
        expected = 1.0 if layer_name in ones else 0.0
        assert biases and all(np.all(b == expected) for b in biases), layer_name
        for k in kernels:
            assert abs(k.std() - 0.01) < 0.0005, (layer_name, k.std())
            assert abs(k.mean()) < 0.001, layer_name


def test_fc8_bias_is_zero_for_any_number_of_classes():
    model = tiny_model(num_classes=17)
    assert np.all(model.get_layer("fc8").bias.numpy() == 0.0)
    assert np.all(model.get_layer("fc7").bias.numpy() == 1.0)


def test_towers_have_different_initial_weights_with_a_seed():
    conv2 = tiny_model(seed=3).get_layer("conv2")
    a, b = (c.kernel.numpy() for c in conv2.convs)
    assert not np.allclose(a, b)


def test_seed_makes_initialization_reproducible():
    a = tiny_model(seed=7).get_weights()
    b = tiny_model(seed=7).get_weights()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_two_towers_equal_a_grouped_convolution_on_the_same_weights():
    layer = layers_lib.TowerConv2D(8, 3, towers=2, activation=None,
                                  kernel_initializer="glorot_uniform",
                                  bias_initializer="random_normal")
    x = np.random.default_rng(0).normal(size=(2, 7, 7, 6)).astype("float32")
    out = layer(x).numpy()
    # Reference: one convolution whose kernel is block-diagonal over the groups,
    # i.e. group g's outputs see only group g's inputs.
    (k0, b0), (k1, b1) = [(c.kernel.numpy(), c.bias.numpy()) for c in layer.convs]
    full = np.zeros((3, 3, 6, 8), "float32")
    full[:, :, :3, :4], full[:, :, 3:, 4:] = k0, k1
    ref = tf.nn.conv2d(x, full, strides=1, padding="SAME").numpy() + np.concatenate([b0, b1])
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_one_tower_is_an_ordinary_convolution():
    model = model_lib.build_alexnet(towers=1)
    assert len(model.get_layer("conv2").convs) == 1
    assert model.get_layer("conv2").convs[0].kernel.shape == (5, 5, 96, 256)


def _all_ops(graph_def):
    nodes = list(graph_def.node)
    for fn in graph_def.library.function:
        nodes.extend(fn.node_def)
    return nodes


def test_forward_pass_has_no_xla():
    model = tiny_model()
    fn = tf.function(lambda x: model(x, training=False))
    graph_def = fn.get_concrete_function(
        tf.TensorSpec([None, 67, 67, 3], tf.float32)).graph.as_graph_def()
    nodes = _all_ops(graph_def)
    op_types = {n.op for n in nodes}
    assert "Conv2D" in op_types and "LRN" in op_types
    assert not [t for t in op_types if "Xla" in t], op_types
    for node in nodes:
        assert not node.attr["_XlaMustCompile"].b, node.name
    for fn_def in graph_def.library.function:
        assert not fn_def.attr["_XlaMustCompile"].b, fn_def.signature.name


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_every_precision_policy_gives_float32_logits(policy):
    keras.mixed_precision.set_global_policy(policy)
    model = tiny_model()
    logits = model(np.zeros((3, 67, 67, 3), "float32"))
    assert logits.dtype == tf.float32 and logits.shape == (3, 5)
    assert all(v.dtype == "float32" for v in model.weights)


def test_ablation_switches_change_the_network():
    base = tiny_model()
    no_lrn = tiny_model(lrn=False)
    assert "lrn1" in [l.name for l in base.layers]
    assert "lrn1" not in [l.name for l in no_lrn.layers]
    pool = tiny_model(overlapping_pool=False).get_layer("pool1")
    assert pool.pool_size == (2, 2) and pool.strides == (2, 2)
    tanh = tiny_model(activation="tanh")
    assert tanh.get_layer("fc6").activation.__name__ == "tanh"
    assert tiny_model(dropout=0.2).get_layer("drop6").rate == 0.2
    assert [base.get_layer(n).bias for n in ("lrn1", "lrn2")] == [2.0, 2.0]  # the paper's k
    caffe = tiny_model(lrn_bias=1.0)  # Caffe's k
    assert [caffe.get_layer(n).bias for n in ("lrn1", "lrn2")] == [1.0, 1.0]


@pytest.mark.parametrize("kwargs, match", [
    (dict(image_size=50), "image_size"), (dict(towers=3), "towers"),
    (dict(activation="gelu"), "activation"), (dict(init="he"), "init"),
    (dict(dropout_scaling="none"), "dropout_scaling")])
def test_bad_arguments_are_refused_with_the_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_model(**kwargs)


def test_decayed_variables_are_the_kernels(alexnet):
    decayed = steps_lib.decayed_variables(alexnet)  # PaperMomentum's
    biases = [v for v in alexnet.trainable_variables if v.path.endswith("bias")]
    assert len(decayed) == 11 and len(biases) == 11  # conv1, conv3, 3x2 towers, 3 fc
    assert all(len(v.shape) > 1 for v in decayed) and all(len(v.shape) == 1 for v in biases)
    assert len(decayed) + len(biases) == len(alexnet.trainable_variables)


def test_config_round_trip_and_keras_file_reproduce_outputs(tmp_path):
    model = tiny_model(seed=5)
    x = np.random.default_rng(0).normal(0, 50, (2, 67, 67, 3)).astype("float32")
    expected = model(x, training=False).numpy()

    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(x, training=False), expected, rtol=1e-5, atol=1e-5)

    path = tmp_path / "alexnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x, training=False), expected, rtol=1e-5, atol=1e-5)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]


def test_tiny_model_learns_random_data():
    keras.utils.set_random_seed(0)
    model = tiny_model(num_classes=3, init="glorot", dropout=0.0, seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (12, 67, 67, 3)).astype("float32")
    y = rng.integers(0, 3, 12)
    # lr 0.02: at 0.05 the loss fell to 0.53 by epoch 20 and then jumped to 1.8 on an
    # AVX-512-BF16 machine (a test of learning, not of where an oscillation happens to end).
    model.compile(keras.optimizers.SGD(0.02, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=30, batch_size=12, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert after < 0.7 * before, (before, after)


def test_tf_checkpoint_holds_every_weight_including_the_towers(tmp_path):
    model = tiny_model(seed=1)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    saved = {name for name, _ in tf.train.list_variables(path)}
    assert sum("/.ATTRIBUTES/VARIABLE_VALUE" in n for n in saved) >= len(model.weights)
    other = tiny_model(seed=2)
    tf.train.Checkpoint(model=other).restore(path).assert_existing_objects_matched()
    for a, b in zip(model.weights, other.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert other.count_params() == model.count_params()


def test_paper_dropout_zeroes_units_in_training_and_halves_them_at_test_time():
    layer = layers_lib.PaperDropout(0.5, seed=0)
    x = tf.ones((64, 512))
    trained = layer(x, training=True).numpy()
    # The paper's dropout: each unit kept as it is or zeroed; no 1 / (1 - rate) scaling.
    assert set(np.unique(trained)) == {0.0, 1.0}
    assert 0.45 < trained.mean() < 0.55
    np.testing.assert_allclose(layer(x, training=False).numpy(), 0.5)
    # Inverted dropout (keras.layers.Dropout) doubles the kept units instead.
    inverted = keras.layers.Dropout(0.5, seed=0)(x, training=True).numpy()
    assert set(np.unique(inverted)) == {0.0, 2.0}


@pytest.mark.parametrize("scaling, layer_class", [("paper", layers_lib.PaperDropout),
                                                  ("inverted", layers_lib.InvertedDropout)])
def test_dropout_scaling_picks_the_layer_and_the_test_time_output(scaling, layer_class):
    model = tiny_model(seed=2, dropout_scaling=scaling)
    assert type(model.get_layer("drop6")) is layer_class
    x = np.random.default_rng(0).normal(0, 50, (2, 67, 67, 3)).astype("float32")
    fc7 = keras.Model(model.inputs, model.get_layer("fc7").output)(x)
    fc8 = model.get_layer("fc8")
    scale = 0.5 if scaling == "paper" else 1.0
    expected = np.asarray(fc7) * scale @ fc8.kernel.numpy() + fc8.bias.numpy()
    np.testing.assert_allclose(model(x, training=False), expected, rtol=1e-4, atol=1e-4)


def test_init_bias_sets_the_papers_unit_biases_only():
    model = tiny_model(seed=0, init_bias=0.1)
    for name in ("conv2", "conv4", "conv5", "fc6", "fc7"):
        for v in model.get_layer(name).trainable_variables:
            if v.path.endswith("bias"):
                np.testing.assert_allclose(v.numpy(), 0.1)
    for name in ("conv1", "conv3", "fc8"):
        assert np.all(model.get_layer(name).bias.numpy() == 0.0)


def test_inverted_dropout_is_keras_dropout_with_a_seed_per_replica():
    layer = layers_lib.InvertedDropout(0.5, seed=0)
    assert isinstance(layer, keras.layers.Dropout)
    x = tf.ones((64, 512))
    trained = layer(x, training=True).numpy()
    assert set(np.unique(trained)) == {0.0, 2.0} and 0.45 < (trained == 0).mean() < 0.55
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    assert not np.array_equal(layer(x, training=True).numpy(), trained)  # a new mask each call


def test_dropout_masks_are_reproducible_from_the_seed():
    def masks(seed):
        model = tiny_model(seed=seed)
        probe = keras.Model(model.inputs, model.get_layer("drop7").output)
        x = np.random.default_rng(0).normal(0, 50, (4, 67, 67, 3)).astype("float32")
        return [probe(x, training=True).numpy() == 0 for _ in range(2)]

    first, again, other = masks(5), masks(5), masks(6)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])  # each step its own
    assert not np.array_equal(first[0], other[0])


def test_seek_dropout_sets_the_masks_of_a_later_step():
    model = tiny_model(seed=5)
    probe = keras.Model(model.inputs, model.get_layer("drop6").output)
    x = np.random.default_rng(0).normal(0, 50, (4, 67, 67, 3)).astype("float32")
    steps = [probe(x, training=True).numpy() for _ in range(3)]
    layers_lib.seek_dropout(model, 2)
    np.testing.assert_array_equal(probe(x, training=True).numpy(), steps[2])
    layers_lib.seek_dropout(tiny_model(dropout=0.0), 4)  # no dropout: no-op
