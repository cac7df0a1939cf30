"""User-facing errors, and the whole exception tree.

Every error a user can cause (a bad config key, a malformed item file, an invalid address, a
provider refusing a request) is a ``NewsletterError``. The CLI prints its message on one line
and exits non-zero, without a traceback; the web app answers with a plain page. Anything else
is a bug and keeps its traceback. The classes below this module's own are defined where they
are raised (module in brackets); what a transport error means for a send is in
``providers/base.py``.

    NewsletterError
    ├── ConfigError        a config key is missing or has a bad value (names the key and
    │                      the file or NEWSLETTER_<KEY> variable it came from)
    ├── ContentError       a week's folder or an item file is wrong (names the file and line)
    │   └── ItemsError     [project.items_json] a JSON edition breaks the schema (names the
    │                      JSON path)
    ├── TemplateError      a template is missing, malformed or uses an unknown variable
    ├── HeaderError        a value that becomes a mail header has a control character, or
    │                      cannot be encoded (names the header, or the subscriber)
    ├── SubscriberError    a subscriber operation cannot be done (names the address or row)
    │   └── ImportAborted  [audience.transfer] invalid rows: nothing was imported
    ├── OutputError        a file or folder cannot be written (names it, says what to do)
    ├── DatabaseError      [store.db] the database cannot be reached or is at an unknown
    │   │                  schema revision
    │   └── DatabaseBusy   another transaction held a lock for longer than this one would wait
    ├── SendError          [delivery.ledger.sends] a send cannot start or resume as asked
    │   ├── AlreadyInProgress  [delivery.ledger.senders] another sender holds the send
    │   └── NotReady       [delivery.send] `newsletter check` found errors (--force sends)
    ├── TransportError     [providers.base] a provider refused or failed a request
    │   ├── FatalTransportError  every further request would fail too: the send stops
    │   └── BatchError           this request failed: BatchRejected (permanent),
    │                            BatchRetryable (transient, not accepted), OutcomeUnknown
    ├── FeedbackError      [feedback.events] an event could not be taken in
    │   ├── WebhookRejected  a webhook's signature, age, replay or topic is refused (4xx):
    │   │                    NotConfigured, BadSignature, StaleRequest, ReplayedRequest,
    │   │                    UnknownTopic, MalformedPayload (UnusablePayload)
    │   ├── WebhookUnavailable  try again later (503)
    │   ├── ReportError    a bounce or complaint report cannot be read
    │   └── MailboxError   the IMAP mailbox cannot be used
    ├── CatalogError       [preflight.caniemail] the client-support data cannot be read
    ├── ProjectExists      [project.init] `newsletter init` would overwrite something
    └── WeekTaken          [project.week_folder] the week has been sent, or exists

    ValueError
    └── BadToken           [audience.tokens] a link's token is altered, malformed or for
        └── ExpiredToken   another purpose; or older than it may be
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
