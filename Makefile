# The two commands of the README: `make demo` and `make test`. Both create .venv when it is missing or when a
# requirements file changed, then run. Needs Python >= 3.10 (3.11 tested) with venv, and on servers the system
# libraries OpenCV links against (libgl1, libglib2.0-0): `make sysdeps` installs them with apt when run as root.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
STAMP  := $(VENV)/.kdm-installed
PY     := $(VENV)/bin/python
TESTS  ?= tests
# pytest exits 5 when it collected no tests; `make test ALLOW_NO_TESTS=1` (what .ci/run does) accepts that.
ALLOW_NO_TESTS ?= 0

.PHONY: demo test venv sysdeps clean-demo

venv: $(STAMP)

$(STAMP): requirements/runtime.txt requirements/tests.txt pyproject.toml
	@$(MAKE) --no-print-directory sysdeps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools>=61'
	$(PY) -m pip install -q -r requirements/runtime.txt -r requirements/tests.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# OpenCV (pulled in by mmengine/mmcv-lite) needs libGL and glib at import time; Debian/Ubuntu's python3.X also
# needs python3.X-venv (ensurepip) before `python -m venv` works.
sysdeps:
	@if ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
	  pkg=python$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv; \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then echo "installing $$pkg for python -m venv"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkg) >/dev/null; \
	  else echo "error: python -m venv needs ensurepip: sudo apt-get install $$pkg"; exit 1; fi; fi
	@if ldconfig -p 2>/dev/null | grep -q 'libGL.so.1' && ldconfig -p 2>/dev/null | grep -q 'libglib-2.0.so.0'; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo 'installing libgl1 libglib2.0-0 for OpenCV'; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgl1 libglib2.0-0) >/dev/null; \
	else echo 'warning: OpenCV needs libgl1 and libglib2.0-0: sudo apt-get install libgl1 libglib2.0-0'; fi

demo: $(STAMP)
	$(PY) tools/quickstart.py --work-dir work_dirs/demo

test: $(STAMP)
	@rc=0; $(PY) -m pytest $(TESTS) || rc=$$?; \
	if [ $$rc -eq 5 ] && [ "$(ALLOW_NO_TESTS)" = 1 ]; then echo 'pytest collected no tests'; rc=0; fi; exit $$rc

clean-demo:
	rm -rf work_dirs/demo
