# The two commands of the README, and their helpers. Only Python 3 is needed:
# everything else is installed into .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Quieter TensorFlow logs for the demo and the tests.
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test test-fast benchmark clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[test]"
	touch $@

# The main job end to end on the embedded demo data: generate a 10-class image
# set, convert it with make_tfrecords, train with the progress bar, evaluate
# (centre and ten crops), draw the paper's figures of the run (bin/report), export for
# TF Serving (with its model card), and predict on new images through the export.
# Starts afresh in $(DEMO_DIR) each time.
DEMO_DIR ?= runs/demo
demo: $(VENV)/.installed
	rm -rf $(DEMO_DIR)
	$(PY) bin/train --config=configs/demo.py --workdir=$(DEMO_DIR)
	$(PY) bin/report --workdir=$(DEMO_DIR) --out=$(DEMO_DIR)/report
	$(PY) bin/export --workdir=$(DEMO_DIR) --export_dir=$(DEMO_DIR)/models/alexnet
	$(PY) -c "from keras_alexnet.data import demo_data; \
	demo_data.make_demo_images('$(DEMO_DIR)/new_images', images_per_class=1, val_per_class=1, image_size=120, seed=123)"
	$(PY) bin/predict --saved_model=$(DEMO_DIR)/models/alexnet $(DEMO_DIR)/new_images/val/*/*.jpg
	@echo "Figures (learning curves, conv1 kernels, fc7 neighbours): $(DEMO_DIR)/report/*.png"
	@echo "The model card: $(DEMO_DIR)/models/alexnet/1/assets.extra/MODEL_CARD.md"
	@echo "TensorBoard: $(VENV)/bin/tensorboard --logdir $(DEMO_DIR)/tensorboard, then http://localhost:6006"

# The whole test suite (slow tests included).
test: $(VENV)/.installed
	$(PY) -m pytest tests -q

# Without the tests marked slow.
test-fast: $(VENV)/.installed
	$(PY) -m pytest tests -q -m "not slow"

benchmark: $(VENV)/.installed
	$(PY) bin/benchmark train --batch_size=64 --precision=float32
	$(PY) bin/benchmark train --batch_size=64 --precision=mixed_bfloat16

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
