"""LaunchJob: upstream's name for starting another RunTemplate (see chain_runtemplate.py)."""

from multiflexi_web.actions.chain_runtemplate import LaunchJob

__all__ = ["LaunchJob"]
