"""Tenants: the registry's rules, provisioning (warm pool), export, deletion and their API."""
