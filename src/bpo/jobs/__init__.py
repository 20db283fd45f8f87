"""Background work: the Dramatiq broker, the worker, and the actors it runs."""
