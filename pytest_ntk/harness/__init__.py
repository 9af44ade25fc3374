"""The harness: the pytest run's state behind the plugin's hooks, profiles and the claim-suite helper.

Imports pytest and the verdict model; never jax (the science layer is imported lazily, on first use).
"""
