"""User-facing errors.

Every error a user can cause (a bad config key, a malformed item file, an invalid address) is a
``NewsletterError``. The CLI prints its message on one line and exits non-zero, without a
traceback. Anything else is a bug and keeps its traceback.

    NewsletterError
    ├── ConfigError       a config key is missing or has a bad value (names the key)
    ├── ContentError      a week's folder or an item file is wrong (names the file and line)
    ├── TemplateError     a template is missing or uses an unknown variable
    ├── HeaderError       a value that becomes a mail header has a control character, or
    │                     cannot be encoded (names the header, or the subscriber)
    ├── SubscriberError   a subscriber operation cannot be done (names the address or row)
    └── OutputError       a file or folder cannot be written (names it, says what to do)
"""


class NewsletterError(Exception):
    """An error caused by input the user can fix; printed as one line."""


class ConfigError(NewsletterError):
    pass


class ContentError(NewsletterError):
    pass


class TemplateError(NewsletterError):
    pass


class HeaderError(NewsletterError):
    pass


class SubscriberError(NewsletterError):
    pass


class OutputError(NewsletterError):
    pass
