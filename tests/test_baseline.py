"""The baseline checks (only with --save-baseline or --compare-baseline), made from
kubeaccept's check registry (see `pytest --kubeaccept-list` and docs/checks.md)."""

from kubeaccept.suite.tests import tests_of

globals().update(tests_of("baseline"))
