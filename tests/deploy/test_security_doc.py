"""SECURITY.md as an operator reads it: every setting it names is one the app reads, every test file it cites exists."""

from __future__ import annotations

import re

from tests.deploy.test_deploy_dockerfile import app_env_names
from tests.support.harness import ROOT

SECURITY = (ROOT / "SECURITY.md").read_text()


def test_every_setting_security_md_names_is_read_by_the_app() -> None:
    named = set(re.findall(r"`((?:CHAT|JWT|REDIS|MONGODB)_[A-Z0-9_]+)`", SECURITY))
    assert named and named <= app_env_names()


def test_every_test_file_security_md_cites_exists() -> None:
    cited = set(re.findall(r"`(tests/(?:\w+/)*test_\w+\.py)`", SECURITY))
    assert cited and {path for path in cited if not (ROOT / path).is_file()} == set()
