# Two entry points (see README): `make pipeline` and `make test`. Both create .venv on first use.
PY := .venv/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: pipeline test lint setup compare remote-demo

.venv/.installed: requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install --quiet -r requirements.txt
	touch $@

setup: .venv/.installed

pipeline: setup
	PATH="$(CURDIR)/.venv/bin:$$PATH" dvc repro
	PATH="$(CURDIR)/.venv/bin:$$PATH" dvc exp show --no-pager --md --drop '.*' --keep 'Experiment|^mean\.|^wins$$|^train\.(lr|max_steps|freeze_layers|max_seq_length)$$|^finetuned\.[^.]+\.(ndcg@10|accuracy)$$'

# Two pytest workers, one thread each (tests/conftest.py): the dvc end-to-end tests spend much of
# their time starting processes and in I/O, which the other worker fills.
test: setup
	.venv/bin/ruff check .
	PATH="$(CURDIR)/.venv/bin:$$PATH" .venv/bin/pytest -q -n 2 --durations=15

lint: setup
	.venv/bin/ruff check .

compare: setup
	PATH="$(CURDIR)/.venv/bin:$$PATH" dvc exp show --no-pager --md --sort-by metrics/benchmarks.json:mean.finetuned --sort-order desc --drop '.*' --keep 'Experiment|^mean\.|^train\.(lr|max_steps|head_lr)$$'

remote-demo: setup
	.venv/bin/python scripts/remote_demo.py
