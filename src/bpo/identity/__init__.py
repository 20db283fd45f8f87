"""Identity and OAuth 2: bpo as its own authorization server (DESIGN §3)."""
