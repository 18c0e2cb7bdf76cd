"""Image synchronization between regions: triggers, the job queue, the copier and workers."""
