"""Fixtures for the media-gate web tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.web.gate import gate_services
from warden.services import Services


@pytest.fixture
def gate_services_tracked() -> Iterator[Callable[..., Services]]:
    """`gate_services`, with every database it made disposed of after the test."""
    made: list[Services] = []

    def make(*args: Any, **kwargs: Any) -> Services:
        services = gate_services(*args, **kwargs)
        made.append(services)
        return services

    yield make
    for services in made:
        services.scanner.close()  # its decoder processes
        if services.database is not None:
            services.database.dispose()
