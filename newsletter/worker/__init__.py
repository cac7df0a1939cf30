"""The scheduled worker: schedule arithmetic and the long-running service that sends each week."""
