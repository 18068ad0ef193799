# Loads kubeaccept's pytest plugin when running from a checkout; an installed kubeaccept
# registers the same module through its pytest11 entry point.
pytest_plugins = ["kubeaccept.suite.plugin", "kubeaccept.failover.plugin", "kubeaccept.report.plugin"]
