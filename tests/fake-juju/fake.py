#!/usr/bin/python3 -SE
"""Entry point of the fake Juju hook tools and fake systemd: see fakejuju.py.

Every tool name (config-get, relation-set, systemctl, ...) is a symlink to this file; the work is
in the fakejuju module so that Python caches its bytecode (a main script is compiled every run,
and hooks call these tools hundreds of times).  /usr/bin/python3 on purpose: a version-manager
shim on PATH would cost more than the tool itself.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import fakejuju  # noqa: E402

sys.exit(fakejuju.main())
