"""The console: the web app of provider staff and tenant admins, on the same API."""
