from config.env import env_int

# Admin logins (django-axes): after this many failures for a username from one address,
# that pair is locked out for AXES_COOLOFF_MINUTES (an operator can unlock it in the
# admin, "Access attempts", or with `manage.py axes_reset`).
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A locked-out login gets 429 rather than the login page.
AXES_HTTP_RESPONSE_CODE = 429
