from config.env import env_int, env_str

# A period closes this long after its end, so that late events of its last minutes are
# on its invoice rather than on the next one.
BILLING_CLOSE_GRACE_MINUTES = env_int("BILLING_CLOSE_GRACE_MINUTES", 60)

# The currency the margin report, the premium break-even report and the dashboard speak
# (ISO 4217). Revenue in other currencies and inference cost (USD) are converted with the
# FX rates entered in the admin or loaded with `manage.py load_fx_rates`.
REPORTING_CURRENCY = env_str("PAYBACK_REPORTING_CURRENCY", "USD").upper()

# How long after its success an outcome may be reversed: outcomes asks billing's plans
# (the window is a term of the customer's plan) through this function, wired here so
# that outcomes, below billing, imports nothing of it.
OUTCOME_REVERSAL_WINDOW = "billing.plans.selectors.reversal_window"

# Usage (events, outcomes) that names reservations settles them: metering and outcomes,
# below billing, call billing's limits through this function, wired here.
USAGE_SETTLES_RESERVATIONS = "billing.limits.services.reservations_settle_by_usage"

# The fair-use cap per premium seat of each plan over a window, which limits enforces and
# analytics' premium break-even report computes: limits, beside analytics, asks it through
# this function, wired here.
LIMITS_FAIR_USE_CAPS = "billing.analytics.selectors.premium.fair_use_caps"

# The running rollup holds the UTC days that ended more than this many days ago; the later
# ones (calls as they happen, and the day's stragglers) are read call by call and cost
# ingest nothing (billing/invoicing/folding.py).
RUNNING_FOLD_LAG_DAYS = env_int("PAYBACK_RUNNING_FOLD_LAG_DAYS", 1)

# Where customers reach payback's public pages (the hosted statement behind a signed
# link), e.g. https://billing.example.com: the links put on Stripe invoices start with
# it. Empty: no link goes to Stripe (the API still gives the statement).
PUBLIC_URL = env_str("PAYBACK_PUBLIC_URL", "").rstrip("/")
# How long a statement link works: long enough for an invoice's life in Stripe's e-mails.
STATEMENT_LINK_DAYS = env_int("PAYBACK_STATEMENT_LINK_DAYS", 400)
# The link to an invoice's hosted statement (None without PUBLIC_URL), which the Stripe
# push puts on the invoice: stripe_sync, beside statements, asks it through this function.
STATEMENT_URL = "billing.statements.links.statement_url"
# The same link as a path on this host, for the operator's customer pages (analytics).
STATEMENT_PATH = "billing.statements.links.statement_path"

# The operator's locale for the dashboard and the customer pages in the admin: numbers,
# money and percentages as people there read them (babel; e.g. en_US, de_DE). Customers'
# own pages (statements, the portal) follow their browser instead.
OPERATOR_LOCALE = env_str("PAYBACK_OPERATOR_LOCALE", "en_US")

# The alerts a customer's page in the admin lists: analytics, below alerts, asks through
# this function, wired here.
CUSTOMER_ALERTS = "alerts.selectors.customer_alerts"
