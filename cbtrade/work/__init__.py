"""The work queue: top-up and backfill work items on an Azure Storage queue."""
