"""Helpers of ``bench/no_loss.py``: upstream, load, long-lived clients, nginx, the Gantry stack."""
