"""Regulatory compliance: obligations and deadlines, maker-checker filings, sanctions screening."""
