"""xcinspect: inspect and triage Xen PV console rings from dom0."""

__version__ = "0.1.0"
