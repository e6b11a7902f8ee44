"""What every API view shares: the one error shape (errors.py), request parsing
(parsers.py: JSON read exactly, nesting and text checked; batch.py: the batch bodies of
events and outcomes), limits on lists (pagination.py), rate limits (throttling.py), the
reporting window's query parameters and decimal strings (queries.py), the health check
(health.py), and the middleware both request pipelines share (middleware.py: request id,
body limit, 503)."""
