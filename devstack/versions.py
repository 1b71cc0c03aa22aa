"""Pinned versions of the Go programs the local stack builds.

One place to bump them. The Kubernetes version must match the `require`
line of `go/apiserver/go.mod`, and should be one that kubernetes-validate
ships schemas for, so the manifests we validate offline and the server we
run agree.
"""

KUBERNETES_VERSION = "v1.35.4"
KINE_VERSION = "v0.17.5"
HELM_VERSION = "v3.19.5"
