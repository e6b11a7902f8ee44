from config.env import env_bool, env_int, env_list, env_str

# Empty: invoices stay local (push_state "pending") until a key is set.
STRIPE_API_KEY = env_str("STRIPE_API_KEY", "")
# Another API address, e.g. a local fake Stripe (the tests run localstripe).
STRIPE_API_BASE = env_str("STRIPE_API_BASE", "")
STRIPE_TIMEOUT_SECONDS = env_int("STRIPE_TIMEOUT_SECONDS", 20)
# Requests a second each process may send (Stripe's live limit is 100 per account: give
# each of N worker processes 100 / N). 0: no limit.
STRIPE_REQUESTS_PER_SECOND = env_int("STRIPE_REQUESTS_PER_SECOND", 25)
# Comma-separated: two during a rotation, the new one first.
STRIPE_WEBHOOK_SECRETS = env_list("STRIPE_WEBHOOK_SECRETS", [])
# Seconds a signature's timestamp may be off, either way (a replay; a forged future one).
STRIPE_WEBHOOK_TOLERANCE = env_int("STRIPE_WEBHOOK_TOLERANCE", 300)
# The webhook endpoint (no API key: the signature is its authentication): its largest
# body (Stripe's events are far smaller), its requests per client address, how many
# refused requests are kept for diagnosis (a few KiB each), and how long the bodies of
# processed deliveries are kept.
STRIPE_WEBHOOK_MAX_BODY_BYTES = env_int("STRIPE_WEBHOOK_MAX_BODY_BYTES", 1024 * 1024)
STRIPE_WEBHOOK_RATE_LIMIT = env_str("STRIPE_WEBHOOK_RATE_LIMIT", "100/s")
STRIPE_WEBHOOK_REFUSALS_KEPT = env_int("STRIPE_WEBHOOK_REFUSALS_KEPT", 1000)
STRIPE_WEBHOOK_RETENTION_DAYS = env_int("STRIPE_WEBHOOK_RETENTION_DAYS", 30)
# Retries of a push after 5xx, 429 and timeouts, with exponential backoff and jitter.
STRIPE_PUSH_MAX_RETRIES = env_int("STRIPE_PUSH_MAX_RETRIES", 6)
STRIPE_PUSH_BACKOFF_SECONDS = env_int("STRIPE_PUSH_BACKOFF_SECONDS", 5)
# Whether a $0 invoice goes to Stripe; it is kept locally either way (paper trail).
BILLING_SEND_ZERO_INVOICES = env_bool("BILLING_SEND_ZERO_INVOICES", False)
