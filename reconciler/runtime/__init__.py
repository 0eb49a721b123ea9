"""The Linux layer: namespaces, root filesystems, cgroups. The only package with syscalls.

Standard library only: this is on the path of every container start.
"""
