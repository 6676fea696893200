"""Fixtures' building blocks: real git repositories, a git HTTP server behind a token, a registry,
sshd, and a runner for the builder's CLI."""
