"""hubext: an institutional BinderHub on Kubernetes, as a JupyterHub extension."""

__version__ = "0.1.0.dev0"
