"""Driving the devcontainer CLI: its command lines and output (driver.py), the control manifest it reads
(control_manifest.py), and the admin's policy put between it and the engine (guard.py)."""
