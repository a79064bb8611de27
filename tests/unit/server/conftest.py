from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.service.frontline import Frontline
from tests.support.service import running_service


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Frontline]:
    """A service on the embedded default, started as a server starts it."""
    with running_service(tmp_path) as built:
        yield built
