# srfer: every target installs what it needs first (idempotent), then runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data
RUNS   ?= runs
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast lint demo bench bench-serve train-all train-sr train-sr-cycle2 train-sr-fer train-fer train-embed clean

install: $(STAMP)

# Re-installs only when pyproject.toml changes. torch/torchvision come unpinned from the
# registry (the CUDA build, which also runs on CPU).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check srfer tests benchmarks tools
	$(BIN)/ruff format --check srfer tests benchmarks tools

test: lint
	$(BIN)/python -m pytest

# The inner loop while developing: every test not marked slow (CI runs them all via `make test`).
test-fast: install
	$(BIN)/python -m pytest -m "not slow" -q

# The main job on the shipped weights: the astronaut at 512 px, ~24 px and as a 32×32 crop.
# The gallery holds her full-resolution face, so the low-resolution copies get a name.
DEMO_IMAGES := examples/astronaut.png examples/astronaut_small.png examples/faces/astronaut_face_32.png
demo: install
	$(BIN)/srfer info
	rm -f demo_out/gallery.sqlite
	$(BIN)/srfer enroll astronaut examples/gallery/astronaut_128.png --gallery demo_out/gallery.sqlite
	$(BIN)/srfer predict $(DEMO_IMAGES) --gallery demo_out/gallery.sqlite --save-dir demo_out

bench: install
	$(BIN)/python benchmarks/bench_sr.py --data $(DATA)/celeba
	$(BIN)/python benchmarks/bench_recognition.py --fer-archs
	$(BIN)/python benchmarks/bench_identity_paths.py --size 16
	$(BIN)/python benchmarks/bench_shared_trunk.py
	$(BIN)/python benchmarks/bench_predict.py --folder $(DATA)/samples/wild
	$(BIN)/python benchmarks/bench_speed.py --folder $(DATA)/samples/wild --celeba $(DATA)/celeba
	$(BIN)/python benchmarks/bench_enhance.py --folder $(DATA)/samples/wild --celeba $(DATA)/celeba

# `srfer serve` under load on 127.0.0.1 (1/4/16 clients), and identification at 10k/100k identities
bench-serve: install
	$(BIN)/python benchmarks/bench_serve.py --seconds 20
	$(BIN)/python benchmarks/bench_gallery.py

# Every stage in order (SR → FER-domain SR → expression on SR-restored faces → embedder),
# resumable, ending with the evaluation numbers. PROFILE=cpu|full|smoke (auto: full on CUDA).
PROFILE ?= auto
train-all: install
	$(BIN)/srfer pipeline train --data-root $(DATA) --runs $(RUNS) --profile $(PROFILE)

# Recipes on the shared data. CPU defaults: pixel-MSE SRResNet (no VGG19 weights offline);
# on a GPU with VGG19 weights: make train-sr SR_ARGS="--epochs 30 --pretrain-epochs 10 --vgg-weights V.pth"
SR_ARGS ?= --epochs 19 --pretrain-epochs 19 --epoch-size 3008 --val-limit 320 --lr 3e-4
train-sr: install
	$(BIN)/srfer train-sr --data $(DATA)/celeba --out $(RUNS)/sr_celeba_x4 $(SR_ARGS)

# The shipped ×4 file is a second cosine cycle on top of train-sr's best (pixel MSE, bf16
# autocast; 118 min of epochs on 2 cores, 2026-12-03): docs/weights-history.md.
SR_CYCLE2_ARGS ?= --epochs 36 --pretrain-epochs 36 --epoch-size 6016 --val-limit 320 --lr 2e-4 --seed 2
train-sr-cycle2: install
	$(BIN)/srfer train-sr --data $(DATA)/celeba --out $(RUNS)/sr_celeba_x4_cycle2 \
		--init $(RUNS)/sr_celeba_x4/best.safetensors --perceptual none --adversarial-weight 0 $(SR_CYCLE2_ARGS)

# Expression stage: the FER-domain grayscale 12→48 SR first, then the classifier (add
# FER_ARGS="--upscale" for the low-resolution-trained one).
SR_FER_ARGS ?= --epochs 10 --pretrain-epochs 10 --lr 3e-4 --batch-size 32
train-sr-fer: install
	$(BIN)/srfer train-sr --data $(DATA)/fer2013 --channels 1 --hr-size 48 --out $(RUNS)/sr_fer2013_x4 $(SR_FER_ARGS)

FER_ARGS ?=
train-fer: install
	$(BIN)/srfer train-fer --data $(DATA)/fer2013 --out $(RUNS)/fer_mcnn $(FER_ARGS)

# Identity stage on CelebA (partition 0 trains; partition 1's 300 people validate).
EMBED_ARGS ?=
train-embed: install
	$(BIN)/srfer train-embed --data $(DATA)/celeba --out $(RUNS)/embed_celeba $(EMBED_ARGS)

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache
