"""The HA failover gate: power one control plane off, measure what the cluster does through
its controlPlaneEndpoint, etcd, a write and DNS, power it on again and verify it rejoined.

It is the one part of kubeaccept that changes a cluster: it runs only with `--failover`, and
every exit path powers the host on again (a journal on disk covers a crashed runner)."""
