"""The admin's policy: a program of its own, run by docker-guard as `python -I -S rules.py` for each
`run`, `create`, `build` and `compose` call of the devcontainer CLI. Its modules import only the standard
library and each other (tests/unit/test_layout.py), so it runs without the rest of the package.
"""
