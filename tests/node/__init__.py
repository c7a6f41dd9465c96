"""The real node tier: pods on kubelet + containerd (see README.md)."""
