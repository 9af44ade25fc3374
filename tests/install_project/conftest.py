"""Keeps this repository's own test run out of the user project in this folder.

``tests/install_project`` is a user's project that ``tests/test_install_wheel.py`` copies
(its ``pyproject.toml`` and ``claims/``, never this file) to a temporary directory and runs
against the installed wheel. Collected here, its claims would run against the source tree instead.
"""

collect_ignore_glob = ["*"]
