"""People and their access: users, memberships, staff assignments, invites, API clients."""
