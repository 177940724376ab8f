"""Helpers shared by the tests, imported as a package (`from support.corpus import STRATUS`)."""
