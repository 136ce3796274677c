"""GA4GH Data Repository Service 1.5: protocol logic without a web framework."""
