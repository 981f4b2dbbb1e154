"""Integrations: the rewards and data wired into TRL, OpenRLHF, verl, EasyR1, the reward server and file conversion."""
