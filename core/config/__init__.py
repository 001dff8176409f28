"""Settings: the only place that reads the environment.

`Settings.from_env()` parses every variable once, fails loudly with all problems listed at once,
and never prints a secret (`repr` and `safe_dict` redact them). Everything else in the code base
takes a `Settings` (or plain keyword arguments), never `os.environ`.

- `settings.py`: the frozen `Settings`, `SettingsError`, redaction;
- `tables.py`: every environment variable, the field it fills, how it is read and its bounds;
- `parser.py`: reading one variable (collecting problems) and the checks between fields.
"""

from core.config.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError"]
