"""The package's layering: lower subpackages never import higher ones (read from the source)."""
import ast
import os

import keras_alexnet

PACKAGE = os.path.dirname(keras_alexnet.__file__)
# Each part may import its own layer and the ones before it, never one after it.
LAYERS = [
    {"config", "model", "layers", "bfloat16_conv", "fused_lrn", "evaluation", "progress", "locking",
     "disk_full", "input_statistics"},  # top-level
    {"configs"},  # the experiment files: each starts from config.get_config()
    {"data"},
    {"training"},
    {"weights"},  # imported weights (Caffe) written as a run folder
    {"runs"},  # training runs read back: restored, evaluated
    {"serving"},
    {"report"},
    {"applications"},  # keras_alexnet.AlexNet: loads runs (runs.restore) and .keras files
    {"benchmarks"},
    {"study"},
    {"cli"},
]


def _part(module):
    """'data' for keras_alexnet.data.layout, 'model' for keras_alexnet.model."""
    return module.split(".")[1] if module.count(".") >= 1 else ""


def _layer(part):
    return next(i for i, parts in enumerate(LAYERS) if part in parts)


def project_imports(path):
    """Every keras_alexnet module a file imports, at the top or inside functions."""
    tree = ast.parse(open(path).read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("keras_alexnet.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "keras_alexnet":
                found |= {f"keras_alexnet.{a.name}" for a in node.names}
            elif node.module.startswith("keras_alexnet."):
                found.add(node.module)
    return found


def source_files():
    for folder, _, names in os.walk(PACKAGE):
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3]
                yield path, relative.replace(os.sep, ".").removesuffix(".__init__")


def test_every_module_belongs_to_a_layer():
    parts = {_part(m) for _, m in source_files() if m != "keras_alexnet"}
    assert parts <= set().union(*LAYERS), parts - set().union(*LAYERS)


def test_no_module_imports_a_higher_layer():
    violations = []
    for path, module in source_files():
        if module == "keras_alexnet":
            continue
        own = _layer(_part(module))
        for imported in project_imports(path):
            if _layer(_part(imported)) > own:
                violations.append(f"{module} imports {imported}")
    assert violations == []


def test_data_imports_neither_training_nor_serving():
    data = [(p, m) for p, m in source_files() if _part(m) == "data"]
    assert len(data) >= 9  # layout, sources, shard_writer, convert, stats, preprocessing, ...
    for path, module in data:
        for imported in project_imports(path):
            assert _part(imported) not in ("training", "serving", "benchmarks", "cli"), \
                f"{module} imports {imported}"


def test_the_checker_sees_function_level_imports(tmp_path):
    """The check above would catch a late import inside a function, not only top-level ones."""
    path = tmp_path / "fake.py"
    path.write_text("def f():\n    from keras_alexnet.training import train\n"
                    "    import keras_alexnet.serving.export\n"
                    "from keras_alexnet import data, model\n")
    assert project_imports(str(path)) == {"keras_alexnet.training", "keras_alexnet.serving.export",
                                          "keras_alexnet.data", "keras_alexnet.model"}
