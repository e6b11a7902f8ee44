from config.env import env_int, env_list

# How often the beat evaluates the alert rules over the month so far.
ALERTS_EVALUATE_SECONDS = env_int("ALERTS_EVALUATE_SECONDS", 900)
# Webhook deliveries: attempts in all, and the first retry's delay (doubling after each
# failed attempt, at most an hour).
ALERT_WEBHOOK_MAX_ATTEMPTS = env_int("ALERT_WEBHOOK_MAX_ATTEMPTS", 8)
ALERT_WEBHOOK_BACKOFF_SECONDS = env_int("ALERT_WEBHOOK_BACKOFF_SECONDS", 30)
ALERT_WEBHOOK_TIMEOUT_SECONDS = env_int("ALERT_WEBHOOK_TIMEOUT_SECONDS", 10)
# CIDR networks an operator trusts although they are not public (an internal alert relay,
# e.g. "10.1.2.3/32"). Empty by default: every non-public address is refused.
ALERT_WEBHOOK_ALLOWED_NETWORKS = env_list("ALERT_WEBHOOK_ALLOWED_NETWORKS", [])
