"""The lab: a small kubeadm-shaped HA cluster made of network namespaces on this machine,
each host with its own sshd, hostname, addresses, sysctls, iptables and config files.
It exists to prove the suite: healthy lab -> green; injected fault -> the right red test."""
