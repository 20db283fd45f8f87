"""What every domain uses: database and tenancy routing, errors, ids, observability."""
