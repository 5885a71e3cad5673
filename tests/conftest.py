"""Shared fixtures: Azurite (tests/fixtures/azurite.py) and the exchange simulator
(tests/fixtures/exchange_simulator.py) are loaded as plugins so every test folder sees them."""

pytest_plugins = ["tests.fixtures.azurite", "tests.fixtures.exchange_simulator"]
