"""Money scenarios: a developer calls the real /v1/ API, the beat's jobs report the usage, Stripe
(the emulator) closes the period, and the invoice is checked to the cent against the tier's
price and the calls that were admitted. The shared pieces are in ``scenario.py``."""
