"""Helpers shared by the tests, imported as a package (`from tests.support.corpus import STRATUS`):
`corpus` (the vendored CloudTrail data), `live` (a running stack for the end-to-end tests), `stateful`
(a fresh keyed state for the stateful tests)."""
