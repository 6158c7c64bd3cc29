"""Reporting: tables and plots built only from run directories."""
