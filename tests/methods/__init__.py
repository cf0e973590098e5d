"""Method tests (a package: its module names, e.g. methods.test_registry_walk, must not clash with
same-named test files elsewhere such as tests/losses/test_registry_walk.py)."""
