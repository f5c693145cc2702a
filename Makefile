# relulab: set up a virtual environment, run the tests, run the demo.
#   make demo    create .venv (once), install relulab, write demo_out/report.html
#   make test    create .venv (once), install relulab, run the test suite
#   make peers   create .peers-venv: the peers the benchmarks compare with (relucent, PyHessian,
#                curvlinops, BackPACK), pinned, plus relulab itself (no dependencies re-resolved)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.relulab-installed
PYTEST_ARGS ?= -n 2

PEERS  ?= .peers-venv
PEERS_STAMP := $(PEERS)/.peers-installed

.PHONY: venv test demo clean peers

venv: $(STAMP)

# the stamp makes repeated calls cheap; editing pyproject.toml or constraints.txt reinstalls
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# one torch thread per test worker: the workers already use every core
test: venv
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest $(PYTEST_ARGS) tests

demo: venv
	$(BIN)/relulab demo --out demo_out

# The peers' environment, kept apart from relulab's (the benchmarks find it at .peers-venv).
# torch is pinned to relulab's; BackPACK and its helpers go in with --no-deps (its torchvision
# requirement would otherwise pull another torch); relulab goes in with --no-deps (its
# dependencies are already there through the peers) so scripts run by the peers' interpreter
# import it.
peers: $(PEERS_STAMP)

$(PEERS_STAMP): Makefile benchmarks/peers-requirements.txt
	$(PEERS)/bin/python -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet torch==2.13.0
	$(PEERS)/bin/python -m pip install --quiet -c constraints.txt -r benchmarks/peers-requirements.txt
	$(PEERS)/bin/python -m pip install --quiet --no-deps curvlinops-for-pytorch==3.0.1 backpack-for-pytorch==1.7.1 einconv==0.1.0 unfoldNd==0.2.3 pyscnn==0.0.10 linalg_backends==0.0.1b0
	$(PEERS)/bin/python -m pip install --quiet --no-deps -e .
	$(PEERS)/bin/python -c "import relucent, pyhessian, curvlinops, backpack, relulab; print('peers ready:', relucent.__version__)"
	touch $(PEERS_STAMP)

clean:
	rm -rf $(VENV) demo_out
