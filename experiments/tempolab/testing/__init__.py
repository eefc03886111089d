"""Test helpers, not part of the tool: nothing under ``tempolab`` imports this package.

It lives inside ``tempolab`` (and not in ``tests/``) only so that both the tests and
the benchmarks can import it without putting ``tests/`` on ``sys.path``.  It is left
out of the wheel (pyproject.toml ``exclude``), so it exists only in a checkout.

- :mod:`.synthetic`  deterministic synthetic run folders with known answers
- :mod:`.fuzz`       hypothesis strategies and result checks for the config and suite decoders
- :mod:`.labkit`     bring up and deploy a lab, read a node's state from outside (needs root)
- :mod:`.killkit`    kill ``tempo run`` at a chosen moment and check what it left behind
"""
