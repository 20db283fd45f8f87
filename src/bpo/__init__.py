"""bpo: an API through which client firms outsource their back office to a provider."""

__version__ = "0.1.0"
