from config.env import env_int

# A period closes this long after its end, so that late events of its last minutes are
# on its invoice rather than on the next one.
BILLING_CLOSE_GRACE_MINUTES = env_int("BILLING_CLOSE_GRACE_MINUTES", 60)
