"""Repository-wide pytest configuration.

``pytester`` (pytest's own harness for running real pytest sessions on small files) must be
enabled from the root conftest: the plugin's tests in tests/ drive claim files through it.
"""

pytest_plugins = ["pytester"]
