"""A multi-host Shoal cluster on one machine in Linux network namespaces (cluster.py), for
tests and demonstrations that need real separate hosts and a network that can be cut."""
