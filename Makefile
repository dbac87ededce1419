# catsdogs: `make help` lists the targets. Variables (DATA_DIR, EPOCHS, IMAGE_SIZE, ...) override defaults.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CATSDOGS := $(BIN)/python -m jobs
STAMP := $(VENV)/.installed
DATA_DIR ?= data
export CATSDOGS_DATA_DIR := $(abspath $(DATA_DIR))
export TF_CPP_MIN_LOG_LEVEL ?= 2

# Options passed only when set: `make split TRAIN=100`, `make train-scratch EPOCHS=2 IMAGE_SIZE=64`.
opt = $(if $($(1)),--$(2) $($(1)))
flag = $(if $(filter 1 yes true,$($(1))),--$(2))
FETCH_OPTS = $(call opt,SOURCE,source) $(call opt,PER_CLASS,per-class) $(call flag,FORCE,force)
MODEL_OPTS = $(call opt,BATCH_SIZE,batch-size) $(call opt,IMAGE_SIZE,image-size) \
             $(call opt,WEIGHTS,weights)
# The chapter passes each seed of SEEDS itself: it takes these without SEED.
RUN_OPTS = $(MODEL_OPTS) $(call opt,EPOCHS,epochs) $(call opt,LEARNING_RATE,learning-rate) $(call flag,FORCE,force)
TRAIN_OPTS = $(RUN_OPTS) $(call opt,SEED,seed)
# fine-tune's base, when missing, is trained with the same sizes and BASE_EPOCHS (default: EPOCHS, else 50).
BASE_EPOCHS ?= $(EPOCHS)
SPLIT_OPTS = $(call opt,TRAIN,train) $(call opt,VALIDATION,validation) $(call opt,TEST,test) \
             $(call flag,SKIP_CORRUPT,skip-corrupt) $(call flag,FORCE,force)

# The demo: the generated stand-in, small enough for a laptop CPU in a few minutes.
DEMO_PER_CLASS ?= 400
DEMO_SPLIT ?= --train 250 --validation 75 --test 75
DEMO_TRAIN ?= --epochs 10 --image-size 96
DEMO_MNIST ?= --samples 3000 --epochs 2
CATALOG_MODELS := $(shell $(PYTHON) -m shared.training.catalog names)

.DEFAULT_GOAL := help
.PHONY: help venv demo test lint fetch split evaluate chapter learning-curve tensorboard report predict explain export infer clean-data docker-build docker-volume \
        docker-doctor docker-fetch docker-split docker-train docker-evaluate docker-mnist train-mnist container-test k8s-secret k8s-apply k8s-render k8s-learning-curve k8s-infer k8s-serve k8s-serve-kserve k8s-lint \
        k8s-logs k8s-delete k8s-manifests bench parity gpu-check $(addprefix train-,$(CATALOG_MODELS)) train-finetune train-all

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_%-]+:.*## / {printf "  \033[36m%-34s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@$(PYTHON) -m shared.training.catalog make-help

venv: $(STAMP) ## Create (or reuse) the virtual environment with the project installed

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "catsdogs needs Python >= 3.11 (set PYTHON=python3.11)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: $(STAMP) ## Run the pipeline on the generated stand-in (no Kaggle account, no network)
	$(CATSDOGS) fetch --source synthetic --per-class $(DEMO_PER_CLASS)
	$(CATSDOGS) split $(DEMO_SPLIT)
	$(CATSDOGS) train --model scratch $(DEMO_TRAIN)
	$(CATSDOGS) evaluate
	$(CATSDOGS) mnist --source synthetic $(DEMO_MNIST)
	$(CATSDOGS) export --model scratch
	$(CATSDOGS) infer --model scratch
	@echo "demo: data volume at $(CATSDOGS_DATA_DIR) (layout in README.md); reports: $(CATSDOGS_DATA_DIR)/reports/summary.md and mnist.md"
	@echo "demo: a SavedModel in models/scratch/seed-1337/export/scratch/, and reports/infer/scratch-seed-1337/test1/submission.csv"

test: $(STAMP) ## Run the whole test suite
	$(BIN)/python -m pytest

lint: $(STAMP) ## Lint with ruff
	$(BIN)/ruff check jobs shared tests

fetch: $(STAMP) ## Fetch the data (SOURCE=kaggle|synthetic|PATH, PER_CLASS=, FORCE=1)
	$(CATSDOGS) fetch $(FETCH_OPTS)

split: $(STAMP) ## Make the small subset (TRAIN=1000 VALIDATION=500 TEST=1000 per class, SKIP_CORRUPT=1, FORCE=1)
	$(CATSDOGS) split $(SPLIT_OPTS)

# One target per model, from the catalog (shared/training/catalog.py); `make help` lists them with their epochs.
# fine-tune's base, when missing, is trained first with the same options (BASE_EPOCHS for its epochs).
$(addprefix train-,$(CATALOG_MODELS)): train-%: $(STAMP)
	$(CATSDOGS) train --model $* --with-prerequisite $(call opt,BASE_EPOCHS,prerequisite-epochs) $(TRAIN_OPTS)

train-finetune: train-fine-tune ## Same as train-fine-tune (the name the README's examples use)

train-all: $(addprefix train-,$(CATALOG_MODELS)) ## Train every model of the catalog, in its order

# The chapter's opening convnet. On a laptop without network: MNIST_SOURCE=synthetic MNIST_SAMPLES=6000.
MNIST_OPTS = $(call opt,MNIST_MODEL,model) $(call opt,MNIST_SOURCE,source) $(call opt,MNIST_SAMPLES,samples) \
             $(call opt,EPOCHS,epochs) $(call opt,SEED,seed) $(call flag,FORCE,force)
train-mnist: $(STAMP) ## MNIST convnet, 5 epochs (MNIST_MODEL=convnet|no-max-pool, MNIST_SOURCE=keras|synthetic|PATH)
	$(CATSDOGS) mnist $(MNIST_OPTS)

evaluate: $(STAMP) ## Score every trained run on the test subset; write reports/ (MODEL=all|NAME, SEED=, FORCE=1)
	$(CATSDOGS) evaluate $(call opt,MODEL,model) $(call opt,SEED,seed) $(call flag,FORCE,force)

# One recipe line per run, not a shell loop: make passes SIGTERM (a pod's end, `kill`) to its children, and a
# loop's shell would die leaving its trainer running; each line's bash execs the trainer itself.
define newline


endef
# The chapter on one machine, every step resumable (a finished one is a no-op): SEEDS="1337 1 2" trains
# each model once per seed; the options of fetch, split, train and train-mnist apply (EPOCHS= for all).
SEEDS ?= $(shell $(PYTHON) -c "from shared.core.seeds import DEFAULT_SEED; print(DEFAULT_SEED)")
chapter: $(STAMP) ## The whole chapter: fetch, split, MNIST, every model per seed (SEEDS="1337 1 2"), evaluate, the page
	$(CATSDOGS) fetch $(FETCH_OPTS)
	$(CATSDOGS) split $(SPLIT_OPTS)
	$(CATSDOGS) mnist $(MNIST_OPTS)
	$(foreach seed,$(SEEDS),$(foreach model,$(CATALOG_MODELS),$(CATSDOGS) train --model $(model) --seed $(seed) $(RUN_OPTS)$(newline)))
	$(CATSDOGS) evaluate
	@echo "chapter: $(CATSDOGS_DATA_DIR)/reports/index.html (open it in a browser) and summary.md"

# How much data each model needs: every (size, model, seed) is a run on learning/train-<size>/, a no-op when
# done and resumable after a kill; the figure and the page's section are redrawn at the end. EPOCHS= for all.
SIZES ?= $(shell $(PYTHON) -m shared.orchestration.learning sizes)
MODELS ?= $(shell $(PYTHON) -m shared.orchestration.learning models)
learning-curve: $(STAMP) ## Test accuracy by training images (SIZES="250 500 1000 2000" MODELS="..." SEEDS="1 2")
	$(CATSDOGS) learning-curve --sizes "$(SIZES)" --models "$(MODELS)" --seeds "$(SEEDS)" $(MODEL_OPTS) \
	  $(call opt,EPOCHS,epochs)

TENSORBOARD_PORT ?= 6006
tensorboard: $(STAMP) ## TensorBoard over every run's logs, models/<model>/seed-<S>/ (TENSORBOARD_PORT=6006)
	$(BIN)/tensorboard --logdir "$(CATSDOGS_DATA_DIR)/models" --port $(TENSORBOARD_PORT)

report: ## Say where the report is (opens nothing)
	@if [ -f "$(CATSDOGS_DATA_DIR)/reports/summary.md" ]; then \
	  echo "page: $(CATSDOGS_DATA_DIR)/reports/index.html (opens from the volume, no server)"; \
	  echo "summary: $(CATSDOGS_DATA_DIR)/reports/summary.md"; \
	  echo "per run: $(CATSDOGS_DATA_DIR)/reports/<model>/seed-<S>/ (metrics.json, confusion_matrix.png, roc.png, mistakes.png)"; \
	else echo "no report yet: run make evaluate"; exit 3; fi

predict: $(STAMP) ## Classify images: IMAGES="a.jpg dir/" [MODEL=fine-tune] [SEED=1337] [JSON=1]
	@test -n "$(IMAGES)" || { echo "usage: make predict IMAGES='photo.jpg folder/' [MODEL=scratch]" >&2; exit 2; }
	$(CATSDOGS) predict $(call opt,MODEL,model) $(call opt,SEED,seed) $(call flag,JSON,json) $(IMAGES)

infer: $(STAMP) ## Score Kaggle's test1 (or IMAGES="dir/"): MODEL=scratch [SEED=] [SHARD=0 SHARDS=4]; submission.csv
	@test -n "$(MODEL)" || { echo "usage: make infer MODEL=scratch [IMAGES='folder/'] [SHARD=0 SHARDS=4]" >&2; exit 2; }
	$(CATSDOGS) infer --model $(MODEL) $(call opt,SEED,seed) $(call opt,SHARD,shard) $(call opt,SHARDS,shards) \
	  $(call flag,SKIP_UNREADABLE,skip-unreadable) $(IMAGES)

export: $(STAMP) ## SavedModels for TF Serving/KServe: every trained run, or MODEL=scratch [SEED=1337]
	$(CATSDOGS) export $(call opt,MODEL,model) $(call opt,SEED,seed)

explain: $(STAMP) ## Grad-CAM heat maps: IMAGES="a.jpg dir/" MODEL=scratch [SEED=1337] (reports/explained/)
	@test -n "$(IMAGES)" -a -n "$(MODEL)" || { echo "usage: make explain IMAGES='photo.jpg folder/' MODEL=scratch" >&2; exit 2; }
	$(CATSDOGS) explain --model $(MODEL) $(call opt,SEED,seed) $(IMAGES)

# --- containers -------------------------------------------------------------------------------
DOCKER ?= docker
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml)
IMAGE ?= catsdogs:$(VERSION)
GPU_COUNT ?= 1
GPUS ?= --gpus $(GPU_COUNT)
# docker-train exits 3 at once where no GPU is visible; REQUIRE_GPU=0 GPUS= trains on the CPU.
REQUIRE_GPU ?= 1
KAGGLE_JSON ?= $(HOME)/.kaggle/kaggle.json
# The image's user when make runs as root; else yours, so files on the host volume stay yours.
DOCKER_USER ?= $(shell [ "$$(id -u)" = 0 ] && echo 10001:10001 || echo "$$(id -u):$$(id -g)")
DOCKER_RUN = $(DOCKER) run --rm $(GPUS) --user $(DOCKER_USER) -e HOME=/tmp -v "$(CATSDOGS_DATA_DIR)":/data \
	-e KAGGLE_USERNAME -e KAGGLE_KEY -e KAGGLE_API_TOKEN \
	$(if $(wildcard $(KAGGLE_JSON)),-v "$(KAGGLE_JSON)":/kaggle/kaggle.json:ro -e KAGGLE_CONFIG_DIR=/kaggle) $(IMAGE)

docker-build: ## Build the image (DOCKER=podman, BASE_IMAGE=..., BAKE_VGG16_WEIGHTS=1, IMAGE=catsdogs:$(VERSION))
	$(DOCKER) build -f docker/Dockerfile -t $(IMAGE) $(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
	  $(if $(WITH_CUDA),--build-arg WITH_CUDA=$(WITH_CUDA)) \
	  $(if $(BAKE_VGG16_WEIGHTS),--build-arg BAKE_VGG16_WEIGHTS=$(BAKE_VGG16_WEIGHTS)) .

docker-volume:
	@mkdir -p "$(CATSDOGS_DATA_DIR)"
	@[ "$$(id -u)" != 0 ] || chown 10001:10001 "$(CATSDOGS_DATA_DIR)"

docker-doctor: docker-volume ## In the image: TensorFlow's CUDA/cuDNN build, GPUs, volume, credentials
	$(DOCKER_RUN) doctor

docker-fetch: docker-volume ## In the image: fetch (SOURCE=..., credentials from the environment or kaggle.json)
	$(DOCKER_RUN) fetch $(FETCH_OPTS)

docker-split: docker-volume ## In the image: split (TRAIN= VALIDATION= TEST=)
	$(DOCKER_RUN) split $(SPLIT_OPTS)

docker-train: docker-volume ## In the image, on GPU_COUNT GPUs (1; all): train MODEL=fine-tune (REQUIRE_GPU=0 GPUS= for CPU)
	$(DOCKER_RUN) train --model $(or $(MODEL),fine-tune) --with-prerequisite $(call flag,REQUIRE_GPU,require-gpu) \
	  $(call opt,BASE_EPOCHS,prerequisite-epochs) $(TRAIN_OPTS)

docker-evaluate: docker-volume ## In the image: evaluate every trained model
	$(DOCKER_RUN) evaluate $(call flag,FORCE,force)

docker-mnist: docker-volume ## In the image: the MNIST convnet (MNIST_MODEL=, MNIST_SOURCE=)
	$(DOCKER_RUN) mnist $(MNIST_OPTS)

container-test: ## Build on a local CPU base with podman/docker and run the demo pipeline in the image
	DOCKER=$(if $(filter docker,$(DOCKER)),$(shell command -v podman >/dev/null && echo podman || echo docker),$(DOCKER)) \
	  bash docker/container-test.sh

# --- Kubernetes ---------------------------------------------------------------------------------
KUBECTL ?= kubectl
K8S_NS := catsdogs
GPUS_PER_POD ?= 1
K8S_PREPARE_TIMEOUT ?= 12h
# The manifests as applied, rendered by shared/deploy/render.py from the catalog and these settings: the image
# (IMAGE, a registry path or @sha256 digest), GPUs per training pod (0: train on CPUs, with CPU-sized requests),
# MODEL (a comma-separated list) to train only those models, K8S_CLUSTER=single-node for one-node clusters whose
# storage offers only ReadWriteOnce (kind, k3s, minikube), and K8S_SET="KEY=VALUE ..." for any setting of the
# ConfigMap (k8s/20-configmap.yaml). Exported as they are, never edited into text by make or the shell.
K8S_CLUSTER ?= multi-node
K8S_SET ?=
K8S_RENDER := $(BIN)/python -m shared.deploy.render
k8s-render k8s-apply k8s-learning-curve k8s-infer k8s-serve k8s-serve-kserve: export IMAGE := $(IMAGE)
k8s-render k8s-apply k8s-learning-curve k8s-infer k8s-serve k8s-serve-kserve: export GPUS_PER_POD := $(GPUS_PER_POD)
k8s-render k8s-apply k8s-learning-curve k8s-infer k8s-serve k8s-serve-kserve: export K8S_CLUSTER := $(K8S_CLUSTER)
k8s-render k8s-apply k8s-learning-curve k8s-infer k8s-serve k8s-serve-kserve: export MODEL := $(MODEL)
k8s-render k8s-apply k8s-learning-curve k8s-infer k8s-serve k8s-serve-kserve: export K8S_SET := $(K8S_SET)

k8s-secret: ## Create the kaggle-credentials Secret (a kaggle.json) from KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json
	@tmp=$$(mktemp -d) && chmod 700 "$$tmp" && trap 'rm -rf "$$tmp"' EXIT && \
	KAGGLE_JSON="$(KAGGLE_JSON)" $(PYTHON) -c 'import json, os, sys; \
	u, k = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY"); \
	p = os.environ["KAGGLE_JSON"]; c = json.load(open(p)) if not (u and k) and os.path.isfile(p) else {}; \
	u, k = u or c.get("username"), k or c.get("key"); \
	sys.exit("error: set KAGGLE_USERNAME and KAGGLE_KEY, or put kaggle.json in ~/.kaggle") if not (u and k) else None; \
	print(json.dumps({"username": u, "key": k}))' > "$$tmp/kaggle.json" && \
	$(KUBECTL) apply -f k8s/00-namespace.yaml >/dev/null && \
	$(KUBECTL) -n $(K8S_NS) create secret generic kaggle-credentials --from-file=kaggle.json="$$tmp/kaggle.json" \
	  --dry-run=client -o yaml | $(KUBECTL) apply -f - && echo "Secret kaggle-credentials is in place (its values are not shown)"

k8s-render: $(STAMP) ## Print the manifests as k8s-apply applies them (IMAGE=, GPUS_PER_POD=1, MODEL=, K8S_CLUSTER=, K8S_SET=)
	@$(K8S_RENDER) --part chapter

k8s-apply: $(STAMP) ## The chapter on a cluster: prepare, then the models in parallel (K8S_CLUSTER=single-node for kind/k3s)
	$(K8S_RENDER) --part prepare > /dev/null  # the settings are checked before anything is applied
	$(K8S_RENDER) --part prepare | $(KUBECTL) apply -f -
	$(KUBECTL) -n $(K8S_NS) wait --for=condition=complete --timeout=$(K8S_PREPARE_TIMEOUT) job/catsdogs-prepare
	$(K8S_RENDER) --part train | $(KUBECTL) apply -f -

k8s-learning-curve: $(STAMP) ## The learning curve on a cluster, after k8s-apply's prepare (K8S_SET="CATSDOGS_LEARNING_SIZES=...")
	$(K8S_RENDER) --part learning-curve > /dev/null  # the settings are checked before anything is applied
	$(K8S_RENDER) --part prepare | $(KUBECTL) apply -f -  # the ConfigMap with the same settings
	$(K8S_RENDER) --part learning-curve | $(KUBECTL) apply -f -

k8s-infer: $(STAMP) ## Score Kaggle's test1 on a cluster in shards (K8S_SET="CATSDOGS_INFER_MODEL=fine-tune CATSDOGS_INFER_SHARDS=8")
	$(K8S_RENDER) --part infer > /dev/null  # the settings are checked before anything is applied
	$(K8S_RENDER) --part prepare | $(KUBECTL) apply -f -  # the ConfigMap with the same settings
	$(K8S_RENDER) --part infer | $(KUBECTL) apply -f -

k8s-serve: $(STAMP) ## Serve an export on a cluster with TF Serving (K8S_SET="CATSDOGS_SERVE_MODEL=scratch CATSDOGS_SERVE_SEED=1")
	$(K8S_RENDER) --part serving > /dev/null  # the settings are checked before anything is applied
	$(K8S_RENDER) --part prepare | $(KUBECTL) apply -f -  # the ConfigMap with the same settings
	$(K8S_RENDER) --part serving | $(KUBECTL) apply -f -

k8s-serve-kserve: $(STAMP) ## The same export as a KServe InferenceService (clusters with KServe installed)
	$(K8S_RENDER) --part kserve | $(KUBECTL) apply -f -

k8s-manifests: $(STAMP) ## Rewrite k8s/ from shared/deploy/templates/ and the catalog, default settings (commit the result)
	env -u IMAGE -u GPUS_PER_POD -u K8S_CLUSTER -u MODEL -u K8S_SET $(K8S_RENDER) --write k8s

k8s-logs: ## Follow the training pods' logs (prefixed by pod); the prepare Job's: kubectl -n catsdogs logs job/catsdogs-prepare
	$(KUBECTL) -n $(K8S_NS) logs -f -l job-name=catsdogs-train --prefix=true --max-log-requests=10

k8s-lint: ## checkov over k8s/ and docker/Dockerfile (installed into .venv-checkov the first time; not in make test)
	test -x .venv-checkov/bin/checkov || { $(PYTHON) -m venv .venv-checkov && .venv-checkov/bin/pip install -q checkov; }
	.venv-checkov/bin/checkov -d k8s --quiet --compact --skip-download
	.venv-checkov/bin/checkov -f docker/Dockerfile --quiet --compact --skip-download

k8s-delete: ## Delete the Jobs (the data volume and its results stay)
	$(KUBECTL) -n $(K8S_NS) delete job catsdogs-prepare catsdogs-train catsdogs-learning-curve catsdogs-infer \
	  --ignore-not-found

bench: $(STAMP) ## Benchmark against the seed's code on a generated split; writes bench.json (not in make test)
	$(BIN)/python -m tests.bench.bench $(call opt,BENCH_PER_CLASS,per-class) $(call opt,BENCH_REPEATS,repeats) \
	  $(call opt,BENCH_IMAGE_SIZE,image-size) $(call opt,BENCH_VGG_PER_CLASS,vgg-per-class) \
	  $(call opt,BENCH_FEATURES_PER_CLASS,features-per-class) $(call opt,BENCH_CHAIN_PER_CLASS,chain-per-class) \
	  $(call opt,BENCH_INFER_IMAGES,infer-images) $(BENCH_ARGS)

parity: $(STAMP) ## Accuracy of float32 against --precision auto, 3 seeds, scratch and feature-extraction
	$(BIN)/python -m tests.bench.parity

gpu-check: $(STAMP) ## On a GPU host: doctor, then images/s of every model under --precision auto on one GPU and on all
	PYTHON=$(BIN)/python bash tests/bench/gpu_check.sh

clean-data: ## Delete the data volume at DATA_DIR (asks nothing: be sure)
	rm -rf "$(CATSDOGS_DATA_DIR)"
