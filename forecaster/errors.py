"""Errors a user can fix: the entry point prints their one-line message and exits with code 2."""

EXIT_USER_ERROR = 2  # every entry point's exit code for an error the user can fix


class UserError(Exception):
    """Bad input (config, file, model, endpoint answer); the message says what is wrong and what to do."""


class ConfigError(UserError):
    """A config the user wrote that cannot run; the message is one line saying what to change."""
