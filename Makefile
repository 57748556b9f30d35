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

# The main job end to end on the embedded demo data.
demo: $(VENV)/.installed
	$(PY) -c "from keras_alexnet import model; m = model.build_alexnet(); m.summary(); \
	import numpy as np; print('logits', m(np.zeros((2, 227, 227, 3), 'float32')).shape)"

# The whole test suite (slow tests included).
test: $(VENV)/.installed
	$(PY) -m pytest tests -q

# Without the tests marked slow.
test-fast: $(VENV)/.installed
	$(PY) -m pytest tests -q -m "not slow"

benchmark: $(VENV)/.installed
	$(PY) bin/benchmark train --batch_size 64 --precision float32
	$(PY) bin/benchmark train --batch_size 64 --precision mixed_bfloat16

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
