"""Fixtures for the Ansible tests."""

import pytest
from ansible_helpers import find_tool


@pytest.fixture
def tool():
    """Locate an Ansible tool (ansible-playbook, ansible-lint) or fail with the install command."""
    return find_tool
