"""hubext's local development stack.

A real Kubernetes control plane (kube-apiserver on kine/SQLite, both built
from Go modules), a small test kubelet that runs real single-user servers on
loopback addresses, and the glue that the test suite and `dev/up` share.
Nothing here is installed with hubext; it is run from a checkout as
`python -m devstack build|up`.
"""
