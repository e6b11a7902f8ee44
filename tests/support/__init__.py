"""What tests share and no test module owns: waiting for a condition (polling.py), other
processes and their database (processes.py), faults (faults.py), network namespaces
(hosts.py), the Stripe test server (fake_stripe.py), the OpenAPI schema (openapi.py),
and signed Stripe webhooks (stripe_webhooks.py). Factories stay per app
(tests/<app>/factories.py)."""
