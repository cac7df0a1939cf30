"""A newsletter project of one's own: ``init`` (a new project folder), ``new`` (a week's folder,
as stubs or from JSON) and whether an upcoming week is ready (``worker --next``)."""
