"""Fixtures of the operator's pure-function tests."""

from __future__ import annotations

import pytest

from modeldeploy_operator.builders.owner import Owner
from tests.operator_factories import make_owner


@pytest.fixture
def owner() -> Owner:
    return make_owner()
