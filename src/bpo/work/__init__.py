"""Work queues: service catalog, requests, tasks, SLAs, review, time."""
