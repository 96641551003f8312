"""The localkube node agent: a kubelet that runs Pods as local processes.

Kept import-free on purpose: `launch.py` runs inside pods and must load nothing but
the standard library.
"""
