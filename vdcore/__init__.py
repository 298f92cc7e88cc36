"""Shared pieces used by both model packages (VDSM and DRNet)."""
