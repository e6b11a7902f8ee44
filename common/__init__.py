"""What every app uses that is neither configuration nor a domain: enqueueing after
commit, by name (queue.py) and skipping a dependency that just failed (backoff.py);
reads from a replica (replicas.py); metrics (metrics.py); the request id of log lines
(request_id.py); files people download, made safe (exports.py); the admin's read-only
base (admin.py). It imports no other package of payback's but config's."""
