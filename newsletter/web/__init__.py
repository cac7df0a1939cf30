"""The public web app: unsubscribe, double opt-in sign-up, the archive, provider webhooks."""
