"""Webhooks to client firms: endpoints, tenant events, signed deliveries and their attempts."""
