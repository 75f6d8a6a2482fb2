"""Errors a user can cause and fix, each carrying a message that says how."""


class CadenceError(Exception):
    """A problem the user can fix; the CLI prints the message without a traceback."""


class ConfigError(CadenceError):
    """A settings or program file is invalid; the message names the file and the key."""


class CampaignError(CadenceError):
    """A campaign cannot be planned, launched or changed as asked; the message says why."""


class DeliveryError(CadenceError):
    """Delivery could not go on (a worker process died, a channel is misconfigured)."""
