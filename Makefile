# The two commands of the README: `make demo` and `make test`. Both create .venv when it is missing or when a
# requirements file changed, then run. Needs Python >= 3.10 (3.11 tested) with venv, and on servers the system
# libraries OpenCV links against (libgl1, libglib2.0-0): `make sysdeps` installs them with apt when run as root.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.kdm-installed
PY     := $(VENV)/bin/python

.PHONY: demo test venv sysdeps clean-demo

venv: $(STAMP)

$(STAMP): requirements/runtime.txt requirements/tests.txt pyproject.toml
	@$(MAKE) --no-print-directory sysdeps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/runtime.txt -r requirements/tests.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# OpenCV (pulled in by mmengine/mmcv-lite) needs libGL and glib at import time.
sysdeps:
	@if ldconfig -p 2>/dev/null | grep -q 'libGL.so.1' && ldconfig -p 2>/dev/null | grep -q 'libglib-2.0.so.0'; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo 'installing libgl1 libglib2.0-0 for OpenCV'; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgl1 libglib2.0-0) >/dev/null; \
	else echo 'warning: OpenCV needs libgl1 and libglib2.0-0: sudo apt-get install libgl1 libglib2.0-0'; fi

demo: $(STAMP)
	$(PY) tools/quickstart.py --work-dir work_dirs/demo

test: $(STAMP)
	$(PY) -m pytest tests

clean-demo:
	rm -rf work_dirs/demo
