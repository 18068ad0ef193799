"""The HA checks, one test each, made from kubeaccept's check registry (see
`pytest --kubeaccept-list` and docs/checks.md)."""

from kubeaccept.suite.tests import tests_of

globals().update(tests_of("HA"))
