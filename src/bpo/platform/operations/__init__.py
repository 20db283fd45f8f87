"""The provider's operations desk: jobs that failed every retry, for staff admins to read
and replay (the job machinery itself is `bpo.jobs`)."""
